"""The wait's event contract, in one place: how an event is built (a finished batch, a timeout, an
error), how each poll decides whether the wait is over, and what the event means for the task.

The trigger, the sensor and the submit operator's own wait all go through here, so a batch that
fails, a key that is wrong or a deadline that passes ends every kind of wait the same way. Kept
apart from the trigger module so that DAG files importing operators do not load it.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from together_provider._compat import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
    xcom_push,
)
from together_provider.client.errors import RateLimitError, is_transient, permanent_failure
from together_provider.client.polling import next_poll_interval, predicted_seconds_left

if TYPE_CHECKING:
    from together_provider.client.models import BatchJob

EVENT_TIMEOUT = "TIMEOUT"
EVENT_ERROR = "ERROR"
XCOM_KEYS = ("batch_id", "status", "output_file_id", "error_file_id")
# The least part of its interval a wait sleeps, however old the shared answer it woke to.
MIN_SLEEP_FRACTION = 0.1


# ---- building events ------------------------------------------------------------------------------


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


# ---- what errors and events mean for the task -------------------------------------------------------


def failure(message: str, *, soft_fail: bool = False) -> AirflowException:
    """A failure no task retry can fix; a skip with the same words under ``soft_fail``."""
    return AirflowSkipException(message) if soft_fail else AirflowFailException(message)


@contextlib.contextmanager
def task_errors(*, soft_fail: bool = False, conn_id: str | None = None) -> Iterator[None]:
    """Every task path runs its calls in here. What no retry can fix (bad input, a wrong key, an unknown
    id, a broken answer, a missing connection) fails the task at once; what waiting may fix (429, 5xx,
    timeouts) passes through as an ordinary error, so the task's own retries apply."""
    try:
        yield
    except AirflowNotFoundException as exc:
        where = f"connection {conn_id!r}: " if conn_id else ""
        raise failure(f"{where}{exc}{_how_to_add(conn_id)}", soft_fail=soft_fail) from exc
    except AirflowException:
        raise
    except Exception as exc:
        message = permanent_failure(exc)
        if message is None:
            raise
        raise failure(message, soft_fail=soft_fail) from exc


def _how_to_add(conn_id: str | None) -> str:
    """How to create a missing connection: Airflow's own text says only that it is not defined."""
    if not conn_id:
        return ""
    return (
        f"; create it in the UI (Admin > Connections, type Together AI), with `airflow connections add "
        f"{conn_id} --conn-type together --conn-password <your API key>`, or as the environment "
        f"variable AIRFLOW_CONN_{conn_id.upper()}"
    )


def files_text(output_file_id: Any, error_file_id: Any) -> str:
    """The batch's files as a reader wants them: an absent one is said to be absent, not "None"."""
    output = f"output file {output_file_id}" if output_file_id else "no output file"
    return f"{output}, {f'error file {error_file_id}' if error_file_id else 'no error file'}"


def finish_wait(
    context: Any,
    event: dict[str, Any],
    *,
    fail_on_request_errors: bool = False,
    soft_fail: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """Push the outcome to XCom and return it, or raise what the outcome means.

    FAILED, EXPIRED and CANCELLED fail without retries: the batch is final, so a task retry could not
    change it. The file ids are pushed first, since partial results of a failed batch stay available
    (and billed). With ``soft_fail`` every failure that is not worth a retry skips with the same words.
    An event of a wait on several batches (it has ``batch_ids``) goes to ``list_wait.finish_list_wait``.
    """
    if not isinstance(event, dict) or "status" not in event:
        raise AirflowException(f"the batch wait ended with an event this provider cannot read: {event!r}")
    if "batch_ids" in event:
        from together_provider.list_wait import finish_list_wait

        return finish_list_wait(
            context, event, fail_on_request_errors=fail_on_request_errors, soft_fail=soft_fail, log=log
        )
    status = str(event["status"])
    batch_id = event.get("batch_id")
    if status == EVENT_TIMEOUT:
        message = event.get("error") or f"Together batch {batch_id}: timed out waiting"
        raise AirflowSkipException(message) if soft_fail else AirflowSensorTimeout(message)
    if status == EVENT_ERROR:
        message = f"waiting for Together batch {batch_id} failed: {event.get('error')}"
        if event.get("retryable"):
            raise AirflowException(message)
        raise failure(message, soft_fail=soft_fail)

    from together_provider.client.models import BatchStatus

    result = {key: event.get(key) for key in XCOM_KEYS}
    ti = context["ti"]
    for key, value in result.items():
        xcom_push(ti, key, value)

    files = files_text(result["output_file_id"], result["error_file_id"])
    parsed = BatchStatus.parse(status)
    if parsed.is_failure:
        reason = event.get("error") or "Together gave no reason"
        raise failure(f"Together batch {batch_id} ended {status}: {reason} ({files})", soft_fail=soft_fail)
    if not parsed.is_success:
        raise AirflowException(f"Together batch {batch_id} ended with unexpected status {status!r}")
    if log is not None:
        log.info("Together batch %s ended %s: %s", batch_id, status, files)
    if result["error_file_id"]:
        if fail_on_request_errors:
            raise failure(
                f"Together batch {batch_id} completed, but some requests failed: their errors are in "
                f"file {result['error_file_id']} (fail_on_request_errors=True)",
                soft_fail=soft_fail,
            )
        if log is not None:
            log.warning(
                "Together batch %s completed, but some requests failed. Their errors are in file %s "
                "(XCom key 'error_file_id'; fetch it with DownloadBatchFileOperator).",
                batch_id,
                result["error_file_id"],
            )
    from together_provider.assets import annotate_outlets

    annotate_outlets(context, result)
    return result
