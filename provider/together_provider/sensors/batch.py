"""BatchCompletionSensor: wait for a Together batch, deferred to the triggerer by default."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from together_provider._compat import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    Context,
)
from together_provider.links import TogetherBatchLink
from together_provider.outcome import finish_wait
from together_provider.waiting import MIN_DEFAULT_TIMEOUT, default_timeout, push_batch_url

if TYPE_CHECKING:
    from together_provider.hooks.together import TogetherHook


class BatchCompletionSensor(BaseSensorOperator):
    """Wait until a Together batch finishes; push its file ids to XCom, or fail loudly.

    On ``COMPLETED`` the XCom keys ``batch_id``, ``status``, ``output_file_id`` and ``error_file_id``
    (None when absent) are pushed and the same dict is returned. ``FAILED``, ``EXPIRED`` and
    ``CANCELLED`` fail the task without retries (the batch is final), naming the batch, its status and
    Together's error text; with ``soft_fail=True`` the task is skipped instead.

    The sensor checks once before deferring, so an already finished batch never defers.

    :param batch_id: the batch to wait for (templated), e.g. ``"{{ ti.xcom_pull('submit') }}"``.
    :param together_conn_id: the Airflow connection with the Together API key.
    :param poll_interval: seconds between status checks; Together suggests 30-60.
    :param deferrable: wait in the triggerer (no worker slot held). With False, the sensor pokes in
        ``mode="poke"`` or ``mode="reschedule"`` with the same outcomes.
    :param fail_on_request_errors: fail the task when a completed batch has an error file (some of its
        requests failed). By default that only logs a warning.
    :param max_consecutive_failures: polls in a row that may fail on transient errors (after the
        client's own retries) before the wait gives up.
    :param adaptive_polling: while deferred, poll sooner when the batch's progress rate says it is
        about to finish and later when far from it (between 1/4 and 2x ``poll_interval``).
    :param cancel_on_kill: cancel the batch when this task is killed or marked failed, also while
        deferred. Off by default: a sensor usually waits on a batch it does not own.
    :param timeout: how long to wait in all, in seconds. Defaults to Airflow's sensor default but
        never less than 72 hours, since Together batches can run past their 24 h window.
    """

    template_fields: Sequence[str] = ("batch_id", "together_conn_id")
    operator_extra_links = (TogetherBatchLink(),)
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        batch_id: str,
        together_conn_id: str = "together_default",
        poll_interval: float = 60.0,
        deferrable: bool = True,
        fail_on_request_errors: bool = False,
        max_consecutive_failures: int = 5,
        cancel_on_kill: bool = False,
        adaptive_polling: bool = True,
        **kwargs: Any,
    ) -> None:
        if poll_interval is None or poll_interval <= 0:
            raise ValueError(f"poll_interval must be greater than 0 seconds, got {poll_interval!r}")
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = default_timeout()
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.together_conn_id = together_conn_id
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.fail_on_request_errors = fail_on_request_errors
        self.max_consecutive_failures = max_consecutive_failures
        self.cancel_on_kill = cancel_on_kill
        self.adaptive_polling = adaptive_polling

    @cached_property
    def hook(self) -> TogetherHook:
        from together_provider.hooks.together import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    def _check(self, context: Context) -> dict[str, Any] | None:
        """The finished outcome, or None while the batch is still running."""
        from together_provider.triggers.batch import batch_event

        batch = self.hook.get_batch(self.batch_id)
        push_batch_url(context, self.hook, batch.id)
        self.log.info("Together batch %s is %s (progress %s)", batch.id, batch.raw_status, batch.progress)
        if not batch.status.is_terminal:
            return None
        return finish_wait(
            context, batch_event(batch), fail_on_request_errors=self.fail_on_request_errors, log=self.log
        )

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        try:
            outcome = self._check(context)
        except (AirflowFailException, AirflowSensorTimeout) as exc:
            # A batch that had already ended when the sensor started: the base class applies
            # soft_fail only around poke() and resumed methods, so apply it here too.
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail is set: {exc}") from exc
            raise
        if outcome is not None:
            return outcome
        from together_provider.triggers.batch import BatchStatusTrigger

        self.defer(
            trigger=BatchStatusTrigger(
                batch_id=self.batch_id,
                together_conn_id=self.together_conn_id,
                poll_interval=self.poll_interval,
                deadline=time.time() + self.timeout,
                max_consecutive_failures=self.max_consecutive_failures,
                cancel_on_kill=self.cancel_on_kill,
                adaptive_polling=self.adaptive_polling,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def poke(self, context: Context) -> Any:
        from together_provider._compat import PokeReturnValue

        outcome = self._check(context)
        return PokeReturnValue(is_done=True, xcom_value=outcome) if outcome is not None else False

    def on_kill(self) -> None:
        if self.cancel_on_kill:
            from together_provider.operators.batch import cancel_quietly

            cancel_quietly(self.hook, str(self.batch_id), self.log)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return finish_wait(context, event, fail_on_request_errors=self.fail_on_request_errors, log=self.log)


__all__ = ["MIN_DEFAULT_TIMEOUT", "BatchCompletionSensor"]
