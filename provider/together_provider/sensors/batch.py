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
    """Wait until a Together batch finishes; push its file ids to XCom, or fail loudly.

    On ``COMPLETED`` the XCom keys ``batch_id``, ``status``, ``output_file_id`` and ``error_file_id``
    (None when absent) are pushed and the same dict is returned. ``FAILED``, ``EXPIRED`` and
    ``CANCELLED`` fail the task without retries (the batch is final), naming the batch, its status and
    Together's error text, and so does whatever no retry can fix (an unknown batch, a wrong key, an
    empty ``batch_id``); with ``soft_fail=True`` the task is skipped instead, with the same words.

    The sensor checks once before deferring, so an already finished batch never defers.

    ``batch_id`` may be a list of ids (e.g. what ``SubmitBatchOperator(split=True)`` returns), or a
    string that reads as one (a JSON list, or the Python list Jinja renders an XCom list as): then one
    trigger polls them all. The wait succeeds when every batch is COMPLETED and fails without retries
    as soon as one ends FAILED, EXPIRED or CANCELLED, naming it. The XCom keys are then ``batch_ids``,
    ``statuses``, ``output_file_ids`` and ``error_file_ids``, lists in the order given, and the same dict
    is returned. With one id as a string everything is as described above.

    :param batch_id: the batch to wait for (templated), e.g. ``"{{ ti.xcom_pull('submit') }}"``, or a
        list of batches to wait for in one task.
    :param together_conn_id: the Airflow connection with the Together API key.
    :param poll_interval: seconds between status checks; Together suggests 30-60.
    :param deferrable: wait in the triggerer (no worker slot held). With False, the sensor pokes in
        ``mode="poke"`` or ``mode="reschedule"`` with the same outcomes. Defaults to Airflow's
        ``[operators] default_deferrable``, and to True where that is not set.
    :param fail_on_request_errors: fail the task when a completed batch has an error file (some of its
        requests failed). By default that only logs a warning.
    :param max_consecutive_failures: polls in a row that may fail on transient errors (after the
        client's own retries) before the wait gives up and the task fails (its retries then apply).
        In ``mode="reschedule"`` each poke starts afresh, so there one such poll fails the try.
    :param adaptive_polling: while deferred, poll sooner when the batch's progress rate says it is
        about to finish and later when far from it (between 1/4 and 2x ``poll_interval``).
    :param cancel_on_kill: cancel the batch when this task is killed or marked failed, also while
        deferred. Off by default: a sensor usually waits on a batch it does not own. A list wait cancels
        every batch of the list.
    :param cancel_rest_on_failure: a list wait only: once one batch ends FAILED, EXPIRED or CANCELLED,
        cancel the others still running. Off by default, for the same reason.
    :param start_from_trigger: start the wait in the triggerer: the scheduler defers the task at once,
        with no worker run before it (Airflow 2.10+; off by default). Its limits: ``batch_id`` must be
        one id or a Jinja template string (no XComArg, no list), and templates are rendered by the
        triggerer only from Airflow 3.3 on (before, a templated sensor warns and starts on a worker as
        usual); there is no check before deferring, so a finished batch is still seen by the trigger
        and the batch-link XCom is not pushed; the timeout is Airflow's trigger timeout, counted from
        when the scheduler deferred the task; mapped tasks always start on a worker (Airflow does not
        start mapped tasks in the triggerer). ``execute_complete`` still runs on a worker, unless:
    :param end_from_trigger: with ``start_from_trigger=True``, a batch that COMPLETED ends the task in
        the triggerer with the same XComs and return value, so no worker runs at all (Airflow 2.10+);
        every other outcome resumes on a worker as usual. Not with ``outlets`` (Airflow emits no asset
        event for a task the triggerer ends). Off by default.
    :param timeout: how long to wait in all, in seconds. Defaults to Airflow's sensor default but
        never less than 72 hours, since Together batches can run past their 24 h window.
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
