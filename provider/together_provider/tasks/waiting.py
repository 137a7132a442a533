"""The wait as every waiting task runs it: the sensor, and the submit operator with
``wait_for_completion=True``. One settings object builds the trigger to defer to, makes one poll on the
worker (the sensor's poke) and runs the worker's own loop, all over ``client.wait``'s trackers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from together_provider.client.errors import TogetherError
from together_provider.client.polling import MAX_FACTOR, MIN_FACTOR
from together_provider.client.wait import ListTracker, WaitTracker
from together_provider.links import XCOM_BATCH_URL, batch_url

if TYPE_CHECKING:
    from together_provider.client.wait import ListTracker

# Together asks users to wait 72 h before reporting a stuck batch: a shorter default would fail
# batches that are merely slow.
MIN_DEFAULT_TIMEOUT = 72 * 60 * 60


def default_timeout() -> float:
    from together_provider._compat import conf

    return max(conf.getfloat("sensors", "default_timeout", fallback=7 * 24 * 3600), MIN_DEFAULT_TIMEOUT)


def default_deferrable(value: bool | None) -> bool:
    """An explicit ``deferrable`` wins; else ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE`` where the
    deployment sets it; else True.

    Airflow's built-in default for ``[operators] default_deferrable`` is False, and the ``airflow`` CLI
    writes that default into every new airflow.cfg, so a value read from the file cannot tell a choice
    from the default: honouring it would hold a worker slot for a whole batch in every deployment.
    """
    if value is not None:
        return bool(value)
    import os

    if "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE" not in os.environ:
        return True
    from together_provider._compat import conf

    return conf.getboolean("operators", "default_deferrable", fallback=True)


def push_batch_url(context: Any, hook: Any, batch_id: str) -> None:
    """Push the batch's page for the task's link, only where the connection has one: a link built for
    another host (an emulator, a proxy) would open a page that is not this batch's."""
    pattern = hook.settings.batch_page_pattern
    url = batch_url(pattern, batch_id) if pattern else ""
    if url:
        context["ti"].xcom_push(key=XCOM_BATCH_URL, value=url)


def progress_line(batch: Any) -> str:
    line = f"Together batch {batch.id} is {batch.raw_status}"
    return line if batch.progress is None else f"{line} ({batch.progress:.1f}% done)"


@dataclass(frozen=True)
class BatchWait:
    """How a task waits for a batch; the same for the sensor and the submit operator."""

    together_conn_id: str
    poll_interval: float
    timeout: float
    max_consecutive_failures: int = 5
    adaptive_polling: bool = True
    cancel_on_kill: bool = False
    # A list wait only: cancel the batches still running once one ends FAILED, EXPIRED or CANCELLED.
    cancel_rest_on_failure: bool = False

    @classmethod
    def of(cls, task: Any) -> BatchWait:
        """The wait a task's own arguments describe (the sensor's and the submit operator's match)."""
        return cls(
            together_conn_id=task.together_conn_id,
            poll_interval=task.poll_interval,
            timeout=float(task.timeout),
            max_consecutive_failures=task.max_consecutive_failures,
            adaptive_polling=task.adaptive_polling,
            cancel_on_kill=task.cancel_on_kill,
            cancel_rest_on_failure=bool(getattr(task, "cancel_rest_on_failure", False)),
        )

    def tracker(self, batch_id: str, deadline: float | None) -> WaitTracker:
        return WaitTracker(
            batch_id,
            self.poll_interval,
            deadline=deadline,
            max_consecutive_failures=self.max_consecutive_failures,
            adaptive=self.adaptive_polling,
        )

    def list_tracker(
        self, batch_ids: list[str], deadline: float | None, *, max_consecutive_failures: int | None = None
    ) -> ListTracker:
        return ListTracker(
            batch_ids,
            self.poll_interval,
            deadline=deadline,
            max_consecutive_failures=self.max_consecutive_failures
            if max_consecutive_failures is None
            else max_consecutive_failures,
            adaptive=self.adaptive_polling,
        )

    def defer(
        self, task: Any, batch_id: str | list[str], *, clock: Callable[[], float] = time.time
    ) -> NoReturn:
        """Hand the wait to the triggerer; the task resumes in its ``execute_complete``. A list of ids
        defers to one trigger that polls them all."""
        from together_provider.triggers.batch import BatchListStatusTrigger, BatchStatusTrigger

        what = (
            f"{len(batch_id)} Together batches"
            if isinstance(batch_id, list)
            else f"Together batch {batch_id}"
        )
        if self.adaptive_polling:
            low, high = self.poll_interval * MIN_FACTOR, self.poll_interval * MAX_FACTOR
            how_often = f"every {self.poll_interval:g} s (adaptive: {low:g}-{high:g} s, sooner near the end)"
        else:
            how_often = f"every {self.poll_interval:g} s"
        task.log.info(
            "Deferring: the triggerer polls %s %s, for at most %g s; no worker slot is held meanwhile",
            what,
            how_often,
            self.timeout,
        )
        # The deadline and the "waited" of the trigger's progress lines count from the same moment.
        now = clock()
        if isinstance(batch_id, list):
            task.defer(
                trigger=BatchListStatusTrigger(
                    batch_ids=batch_id,
                    together_conn_id=self.together_conn_id,
                    poll_interval=self.poll_interval,
                    deadline=now + self.timeout,
                    max_consecutive_failures=self.max_consecutive_failures,
                    cancel_on_kill=self.cancel_on_kill,
                    cancel_rest_on_failure=self.cancel_rest_on_failure,
                    adaptive_polling=self.adaptive_polling,
                    waiting_since=now,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
            raise AssertionError("defer() returned")  # pragma: no cover - defer always raises
        task.defer(
            trigger=BatchStatusTrigger(
                batch_id=batch_id,
                together_conn_id=self.together_conn_id,
                poll_interval=self.poll_interval,
                deadline=now + self.timeout,
                max_consecutive_failures=self.max_consecutive_failures,
                cancel_on_kill=self.cancel_on_kill,
                adaptive_polling=self.adaptive_polling,
                waiting_since=now,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        raise AssertionError("defer() returned")  # pragma: no cover - defer always raises

    def poll(
        self, hook: Any, batch_id: str, tracker: WaitTracker, log: Any, now: float
    ) -> dict[str, Any] | None:
        """One poll on the worker: the event that ends the wait, or None while it goes on. A poll that
        failed on a transient error is counted and logged, not raised."""

        try:
            batch = hook.get_batch(batch_id)
        except TogetherError as exc:
            event = tracker.failed(exc)
            if event is None:
                log.warning("%s", tracker.failure_line())
            return event
        log.info(progress_line(batch))
        return tracker.answered(batch, now)

    def poll_list(
        self, hook: Any, tracker: ListTracker, log: Any, now: float, *, due_only: bool = False
    ) -> dict[str, Any] | None:
        """One round on the worker over the batches still running (only those due with ``due_only``):
        the event that ends the wait, or None while it goes on. Once one batch has failed, the rest are
        cancelled when ``cancel_rest_on_failure`` says so, before the event is made."""

        event = None
        for batch_id in tracker.due_ids(now if due_only else None):
            try:
                batch = hook.get_batch(batch_id)
            except TogetherError as exc:
                event = tracker.failed(batch_id, exc, now)
                if event is None:
                    log.warning("%s", tracker.trackers[batch_id].failure_line())
            else:
                log.info(progress_line(batch))
                event = tracker.answered(batch, now, batch_id=batch_id)
            if event is not None:
                break
        if event is None:
            return None
        for batch_id in tracker.to_cancel(self.cancel_rest_on_failure):
            try:
                tracker.was_cancelled(hook.cancel_batch(batch_id), batch_id=batch_id)
            except (TogetherError, ValueError) as exc:
                log.warning("Could not cancel Together batch %s: %s", batch_id, exc)
        return tracker.event()

    def run_on_worker(
        self,
        hook: Any,
        batch_id: str | list[str],
        log: Any,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> dict[str, Any]:
        """Wait holding the worker slot (``deferrable=False``); returns the event that ended it."""
        if isinstance(batch_id, list):
            many = self.list_tracker(batch_id, clock() + self.timeout)
            while True:
                event = many.before_poll(clock()) or self.poll_list(hook, many, log, clock(), due_only=True)
                if event is not None:
                    return event
                sleep(many.next_sleep(clock()))
        tracker = self.tracker(batch_id, clock() + self.timeout)
        while True:
            event = tracker.before_poll(clock()) or self.poll(hook, batch_id, tracker, log, clock())
            if event is not None:
                return event
            sleep(tracker.next_sleep(clock()))
