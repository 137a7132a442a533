"""A wait's decisions and its event contract, without I/O: how an event is built (a finished batch, a
timeout, an error), how each poll decides whether a wait on one batch (:class:`WaitTracker`) or on many
(:class:`ListTracker`) is over, and how long to sleep.

The trigger drives a tracker on the event loop, the worker's own wait with ``time.sleep``; both see the
same failures counted, the same deadline and the same intervals. A list wait ends the same way deferred or
poking: all COMPLETED succeeds; the first batch that ends FAILED, EXPIRED or CANCELLED ends the wait at
once, naming it. Each id keeps its own poll cadence, failure count and progress estimate, exactly as a wait
on that one batch would. What an event means for the task is ``tasks/outcome.py``'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from together_provider.client.errors import RateLimitError, is_transient, permanent_failure
from together_provider.client.models import BatchStatus
from together_provider.client.polling import next_poll_interval, predicted_seconds_left

if TYPE_CHECKING:
    from together_provider.client.models import BatchJob

EVENT_TIMEOUT = "TIMEOUT"
EVENT_ERROR = "ERROR"
XCOM_KEYS = ("batch_id", "status", "output_file_id", "error_file_id")
# The least part of its interval a wait sleeps, however old the shared answer it woke to.
MIN_SLEEP_FRACTION = 0.1


# ---- one batch ------------------------------------------------------------------------------


def batch_event(batch: BatchJob) -> dict[str, Any]:
    """The one small JSON payload that ends a wait on a finished batch."""
    return {
        "status": batch.status.value,
        "batch_id": batch.id,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "error": batch.error,
        "progress": batch.progress,
    }


def ended_event(status: str, batch_id: str, message: str, *, retryable: bool = False) -> dict[str, Any]:
    """A wait that ended without a terminal batch status. ``retryable`` tells the task whether a new
    try could succeed (polling kept failing) or not (wrong key, unknown batch)."""
    return {
        "status": status,
        "batch_id": batch_id,
        "output_file_id": None,
        "error_file_id": None,
        "error": message,
        "progress": None,
        "retryable": retryable,
    }


class WaitTracker:
    """One wait's decisions, without I/O: after each poll, whether the wait is over (and with which
    event) and how long to sleep. The trigger drives it on the event loop, the worker's own wait with
    ``time.sleep``; both see the same failures counted, the same deadline and the same intervals.

    :param jitter: the factor an interval is multiplied by (spreads waits that started together).
    """

    __slots__ = (
        "adaptive",
        "batch_id",
        "deadline",
        "failures",
        "first",
        "jitter",
        "last_error",
        "max_failures",
        "poll_interval",
        "retry_after",
        "seconds_left",
    )

    def __init__(
        self,
        batch_id: str,
        poll_interval: float,
        *,
        deadline: float | None = None,
        max_consecutive_failures: int = 5,
        adaptive: bool = True,
        jitter: Callable[[], float] = lambda: random.uniform(0.9, 1.1),
    ) -> None:
        self.batch_id = batch_id
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.max_failures = max_consecutive_failures
        self.adaptive = adaptive
        self.jitter = jitter
        self.first: tuple[float, float] | None = None
        self.seconds_left: float | None = None
        self.failures = 0
        self.last_error = ""
        self.retry_after: float | None = None

    def before_poll(self, now: float) -> dict[str, Any] | None:
        if self.deadline is not None and now >= self.deadline:
            message = (
                f"timed out waiting for Together batch {self.batch_id}: it had not finished by the "
                "deadline (raise the task's timeout to wait longer)"
            )
            return ended_event(EVENT_TIMEOUT, self.batch_id, message)
        return None

    def answered(self, batch: BatchJob, now: float) -> dict[str, Any] | None:
        """The batch as polled: the final event when it has finished, else None (keep waiting)."""
        self.failures, self.retry_after = 0, None
        if self.first is None and batch.progress is not None:
            self.first = (now, batch.progress)
        terminal = batch.status.is_terminal
        self.seconds_left = None if terminal else predicted_seconds_left(self.first, now, batch.progress)
        return batch_event(batch) if terminal else None

    def failed(self, error: Exception) -> dict[str, Any] | None:
        """A poll that failed after the client's own retries: the final event when no poll can fix it
        or too many failed in a row, else None (keep waiting)."""
        message = permanent_failure(error)
        if message is not None or not is_transient(error):
            return ended_event(EVENT_ERROR, self.batch_id, message or str(error))
        self.failures += 1
        # Only the text is kept: an exception holds its traceback's frames until replaced.
        self.last_error = str(error)
        self.retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        if self.failures >= self.max_failures:
            return ended_event(
                EVENT_ERROR,
                self.batch_id,
                f"polling Together batch {self.batch_id} failed {self.failures} times in a row; "
                f"last error: {self.last_error}",
                retryable=True,
            )
        return None

    def failure_line(self) -> str:
        """The log line of a failed poll the wait rides out."""
        return (
            f"Polling Together batch {self.batch_id} failed ({self.failures} of {self.max_failures} allowed "
            f"in a row): {self.last_error}"
        )

    def next_sleep(self, now: float, age: float = 0.0) -> float:
        """Seconds until the next poll, counted from when the answer used was fetched (``age`` ago)."""
        wait = next_poll_interval(self.poll_interval, seconds_left=self.seconds_left, adaptive=self.adaptive)
        wait *= self.jitter()
        # The server's Retry-After outranks the interval; the deadline outranks both.
        if self.retry_after is not None:
            wait = max(wait, self.retry_after)
        # An answer shared by another wait shortens the sleep by its age, but never to nothing: a wait
        # that woke to an old shared answer would otherwise poll again at once and get it again.
        wait = max(wait - age, wait * MIN_SLEEP_FRACTION)
        if self.deadline is not None:
            wait = min(wait, max(0.0, self.deadline - now))
        return wait


# ---- many batches -------------------------------------------------------------------------------

XCOM_LIST_KEYS = ("batch_ids", "statuses", "output_file_ids", "error_file_ids")
# How many ids a message names before it says "and N more": a split of a big file may have hundreds.
NAMED_IDS = 10


def named(ids: Sequence[str]) -> str:
    """The ids for a message, cut after a few."""
    shown = ", ".join(ids[:NAMED_IDS])
    return shown if len(ids) <= NAMED_IDS else f"{shown} and {len(ids) - NAMED_IDS} more"


class ListTracker:
    """One wait on many batches: which ids still run, when each is next due, and the ending.

    The ending is decided once, by the first poll that ends the wait; answers that come after it (the
    same round's, a cancel's) still update the statuses the event reports.
    """

    def __init__(
        self,
        batch_ids: Sequence[str],
        poll_interval: float,
        *,
        deadline: float | None = None,
        max_consecutive_failures: int = 5,
        adaptive: bool = True,
        jitter: Callable[[], float] | None = None,
    ) -> None:
        self.batch_ids = list(batch_ids)
        self.deadline = deadline
        extra = {} if jitter is None else {"jitter": jitter}
        self.trackers = {
            bid: WaitTracker(
                bid,
                poll_interval,
                deadline=deadline,
                max_consecutive_failures=max_consecutive_failures,
                adaptive=adaptive,
                **extra,
            )
            for bid in self.batch_ids
        }
        self.seen: dict[str, dict[str, Any]] = {}
        self.pending = list(self.batch_ids)
        self.due: dict[str, float] = {}
        self.cancelled: list[str] = []
        self.ending: dict[str, Any] | None = None

    # ---- polling --------------------------------------------------------------------------------

    def before_poll(self, now: float) -> dict[str, Any] | None:
        if self.ending is None and self.deadline is not None and now >= self.deadline:
            self.end(
                EVENT_TIMEOUT,
                None,
                f"timed out waiting for Together batches {named(self.pending)}: they had not finished by "
                "the deadline (raise the task's timeout to wait longer)",
            )
        return self.event() if self.ending is not None else None

    def due_ids(self, now: float | None = None) -> list[str]:
        """The ids still running whose poll is due (all of them when ``now`` is None)."""
        if now is None:
            return list(self.pending)
        return [bid for bid in self.pending if self.due.get(bid, now) <= now]

    def answered(
        self, batch: BatchJob, now: float, age: float = 0.0, *, batch_id: str | None = None
    ) -> dict[str, Any] | None:
        """A poll's answer; ``batch_id`` is the id it was asked for (the batch's own by default), so the
        lists stay keyed by the ids the task was given."""
        bid = batch_id or batch.id
        tracker = self.trackers[bid]
        self._note(batch, bid)
        ended = tracker.answered(batch, now)
        if ended is None:
            self.due[bid] = now + tracker.next_sleep(now, age)
        elif bid in self.pending:
            self.pending.remove(bid)
            if self.ending is None and batch.status.is_failure:
                self.end(str(ended["status"]), bid, ended.get("error"))
        if self.ending is None and not self.pending:
            self.end("COMPLETED", None, None)
        return self.event() if self.ending is not None else None

    def failed(self, batch_id: str, error: Exception, now: float) -> dict[str, Any] | None:
        tracker = self.trackers[batch_id]
        ended = tracker.failed(error)
        if ended is None:
            self.due[batch_id] = now + tracker.next_sleep(now)
        elif self.ending is None:
            self.end(EVENT_ERROR, batch_id, ended["error"], retryable=bool(ended.get("retryable")))
        return self.event() if self.ending is not None else None

    def next_sleep(self, now: float) -> float:
        """Seconds until the earliest poll due (each tracker already keeps its own to the deadline)."""
        dues = [self.due.get(bid, now) for bid in self.pending]
        return max(0.0, min(dues) - now) if dues else 0.0

    # ---- ending ---------------------------------------------------------------------------------

    def to_cancel(self, cancel_rest_on_failure: bool) -> list[str]:
        """The ids to cancel now: the ones still running, once a batch has ended FAILED, EXPIRED or
        CANCELLED and the task asked for it. Polling errors and timeouts cancel nothing: a retry may
        still see every batch through."""
        ending = self.ending
        if not cancel_rest_on_failure or ending is None or ending["status"] in ("COMPLETED", EVENT_ERROR):
            return []
        if ending["status"] == EVENT_TIMEOUT:
            return []
        return list(self.pending)

    def was_cancelled(self, batch: BatchJob, *, batch_id: str | None = None) -> None:
        """A cancel's answer: its status is the one the event reports. A batch that had completed by
        then was not cancelled, and counts as finished."""
        bid = batch_id or batch.id
        self._note(batch, bid)
        if batch.status.is_success:
            if bid in self.pending:
                self.pending.remove(bid)
        elif bid not in self.cancelled:
            self.cancelled.append(bid)

    def _note(self, batch: BatchJob, batch_id: str) -> None:
        self.seen[batch_id] = {
            "status": batch.raw_status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
        }

    def end(self, status: str, culprit: str | None, error: Any, *, retryable: bool = False) -> None:
        self.ending = {"status": status, "batch_id": culprit, "error": error, "retryable": retryable}

    def event(self) -> dict[str, Any]:
        """The one small JSON payload that ends the wait: the ending and every batch's last known state,
        in the order the ids were given (None where a batch was never answered)."""
        assert self.ending is not None, "event() before the wait ended"
        seen = self.seen
        return {
            **self.ending,
            "batch_ids": list(self.batch_ids),
            "statuses": [seen.get(bid, {}).get("status") for bid in self.batch_ids],
            "output_file_ids": [seen.get(bid, {}).get("output_file_id") for bid in self.batch_ids],
            "error_file_ids": [seen.get(bid, {}).get("error_file_id") for bid in self.batch_ids],
            "running": [bid for bid in self.pending if bid not in self.cancelled],
            "cancelled": list(self.cancelled),
            "progress": None,
        }


def files_text(output_file_id: Any, error_file_id: Any) -> str:
    """The batch's files as a reader wants them: an absent one is said to be absent, not "None"."""
    output = f"output file {output_file_id}" if output_file_id else "no output file"
    return f"{output}, {f'error file {error_file_id}' if error_file_id else 'no error file'}"


def wait_result(event: dict[str, Any]) -> dict[str, Any]:
    """What a one-batch wait pushes to XCom and returns."""
    return {key: event.get(key) for key in XCOM_KEYS}


def ends_in_success(event: dict[str, Any], *, fail_on_request_errors: bool) -> bool:
    """Whether a one-batch wait's event ends its task in success: the batch COMPLETED, and had no
    request errors if the task asked to fail on them."""

    if "batch_ids" in event or not BatchStatus.parse(event.get("status")).is_success:
        return False
    return not (fail_on_request_errors and event.get("error_file_id"))


def request_errors_line(result: dict[str, Any]) -> str:
    """The warning of a batch that completed with request errors, the task going on."""
    return (
        f"Together batch {result.get('batch_id')} completed, but some requests failed. Their errors are in "
        f"file {result.get('error_file_id')} (XCom key 'error_file_id'; fetch it with "
        "DownloadBatchFileOperator)."
    )
