"""BatchCompletionSensor: wait for a Together batch, deferred to the triggerer by default."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from together_provider._compat import BaseSensorOperator, Context
from together_provider.client.ids import batch_ids_of
from together_provider.client.polling import checked_poll_interval
from together_provider.client.wait import ListTracker, WaitTracker
from together_provider.links import TogetherBatchLink
from together_provider.tasks.base import cancel_quietly
from together_provider.tasks.outcome import finish_wait, task_errors
from together_provider.tasks.start_in_triggerer import start_trigger_args
from together_provider.tasks.waiting import (
    BatchWait,
    default_deferrable,
    default_timeout,
    push_batch_url,
)

if TYPE_CHECKING:
    from together_provider.hooks.together import TogetherHook


class BatchCompletionSensor(BaseSensorOperator):
    """Wait until a Together batch, or each of a list of batches, finishes; push the file ids to XCom, or
    fail loudly.

    Checks once on the worker, then defers to the triggerer (or pokes). On ``COMPLETED`` it pushes
    ``batch_id``, ``status``, ``output_file_id`` and ``error_file_id`` and returns them as a dict (for a
    list: ``batch_ids``, ``statuses``, ``output_file_ids`` and ``error_file_ids``). ``FAILED``, ``EXPIRED``
    and ``CANCELLED`` fail the task without retries, naming the batch and Together's reason;
    ``soft_fail=True`` skips it instead. How-to guide: :doc:`/operators/batch_completion_sensor`.

    :param batch_id: the batch to wait for (templated), e.g. ``"{{ ti.xcom_pull('submit') }}"``, or a list
        of batches (or a string that reads as one) to wait for in one task.
    :param together_conn_id: the Airflow connection with the Together API key.
    :param poll_interval: seconds between status checks; Together suggests 30-60.
    :param deferrable: wait in the triggerer (no worker slot held); with False, poke in ``mode="poke"`` or
        ``mode="reschedule"``. Defaults to Airflow's ``[operators] default_deferrable``, and to True where
        that is not set.
    :param fail_on_request_errors: fail the task when a completed batch has an error file (some of its
        requests failed). By default that only logs a warning.
    :param max_consecutive_failures: polls in a row that may fail on transient errors (after the client's
        own retries) before the task fails (its retries then apply); in ``mode="reschedule"``, one.
    :param adaptive_polling: while deferred, poll sooner when the batch's progress rate says it is about
        to finish and later when far from it (between 1/4 and 2x ``poll_interval``).
    :param cancel_on_kill: cancel the batch (every batch of a list) when this task is killed or marked
        failed, also while deferred. Off by default: a sensor usually waits on a batch it does not own.
    :param cancel_rest_on_failure: a list wait only: once one batch ends FAILED, EXPIRED or CANCELLED,
        cancel the others still running. Off by default, for the same reason.
    :param start_from_trigger: start the wait in the triggerer, with no worker run before it (Airflow
        2.10+; off by default). ``batch_id`` must then be one id or a Jinja template string; the other
        limits are in the how-to guide.
    :param end_from_trigger: with ``start_from_trigger=True``, a COMPLETED batch ends the task in the
        triggerer with the same XComs, so no worker runs at all; not with ``outlets``. Off by default.
    :param timeout: how long to wait in all, in seconds. Defaults to Airflow's sensor default but never
        less than 72 hours, since Together batches can run past their 24 h window.
    """

    template_fields: Sequence[str] = ("batch_id", "together_conn_id")
    operator_extra_links = (TogetherBatchLink(),)
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        batch_id: str | list[str],
        together_conn_id: str = "together_default",
        poll_interval: float = 60.0,
        deferrable: bool | None = None,
        fail_on_request_errors: bool = False,
        max_consecutive_failures: int = 5,
        cancel_on_kill: bool = False,
        adaptive_polling: bool = True,
        cancel_rest_on_failure: bool = False,
        start_from_trigger: bool = False,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        poll_interval = checked_poll_interval(poll_interval)
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = default_timeout()
        kwargs.setdefault("poke_interval", poll_interval)
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.together_conn_id = together_conn_id
        self.poll_interval = poll_interval
        self.deferrable = default_deferrable(deferrable)
        self.fail_on_request_errors = fail_on_request_errors
        self.max_consecutive_failures = max_consecutive_failures
        self.cancel_on_kill = cancel_on_kill
        self.adaptive_polling = adaptive_polling
        self.cancel_rest_on_failure = cancel_rest_on_failure
        self._tracker: WaitTracker | ListTracker | None = None
        # The check execute() makes before deferring allows two failed polls: the trigger rides out more.
        self._before_defer = False
        self.end_from_trigger = end_from_trigger
        if start_from_trigger or end_from_trigger:
            self.start_trigger_args = start_trigger_args(self, start_from_trigger)
            self.start_from_trigger = self.start_trigger_args is not None

    @cached_property
    def hook(self) -> TogetherHook:
        from together_provider.hooks.together import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    @property
    def wait(self) -> BatchWait:
        return BatchWait.of(self)

    def _check(self, context: Context) -> dict[str, Any] | None:
        """One poll: the finished outcome (or the failure it means), None while the batch runs. A
        transient failure is counted, up to ``max_consecutive_failures`` polls in a row."""
        with task_errors(soft_fail=self.soft_fail, conn_id=self.together_conn_id):
            ids = batch_ids_of(self.batch_id, "batch_id")
            if isinstance(ids, list):
                return self._check_list(context, ids)
            batch_id = ids
            push_batch_url(context, self.hook, batch_id)
            if not isinstance(self._tracker, WaitTracker):
                self._tracker = WaitTracker(
                    batch_id, self.poll_interval, max_consecutive_failures=self._failure_limit()
                )
            event = self.wait.poll(self.hook, batch_id, self._tracker, self.log, time.time())
        return None if event is None else self._finish(context, event)

    def _check_list(self, context: Context, ids: list[str]) -> dict[str, Any] | None:
        """One round over the batches of a list wait still running, through the same poll code."""

        if not isinstance(self._tracker, ListTracker):
            self._tracker = self.wait.list_tracker(ids, None, max_consecutive_failures=self._failure_limit())
        event = self.wait.poll_list(self.hook, self._tracker, self.log, time.time())
        return None if event is None else self._finish(context, event)

    def _failure_limit(self) -> int:
        """Failed polls in a row a check allows: two before deferring; in poke mode the tracker lives
        across pokes and allows ``max_consecutive_failures``; reschedule mode starts each poke afresh, so
        there a poll that fails after the client's own retries fails the try."""
        if self._before_defer:
            return 2
        return self.max_consecutive_failures if self.mode == "poke" else 1

    def _finish(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return finish_wait(
            context,
            event,
            fail_on_request_errors=self.fail_on_request_errors,
            soft_fail=self.soft_fail,
            log=self.log,
        )

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # The first check before deferring: a finished batch never defers, and what no poll can fix
        # fails here. A transient failure is left to the trigger, which rides out several.
        self._before_defer, self._tracker = True, None
        outcome = self._check(context)
        if outcome is not None:
            return outcome
        self.wait.defer(self, batch_ids_of(self.batch_id, "batch_id"))

    def poke(self, context: Context) -> Any:
        from together_provider._compat import PokeReturnValue

        outcome = self._check(context)
        return PokeReturnValue(is_done=True, xcom_value=outcome) if outcome is not None else False

    def on_kill(self) -> None:
        if self.cancel_on_kill:
            try:
                ids = batch_ids_of(self.batch_id, "batch_id")
            except ValueError:
                return  # nothing valid was ever waited on
            for batch_id in [ids] if isinstance(ids, str) else ids:
                cancel_quietly(self.hook, batch_id, self.log)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return self._finish(context, event)
