"""What a finished wait means for the task: shared by the sensor and the submit operator's own wait."""

from __future__ import annotations

from typing import Any

from together_provider._compat import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    xcom_push,
)

# Kept apart from the trigger module so that DAG files importing operators do not load it.
EVENT_TIMEOUT = "TIMEOUT"
EVENT_ERROR = "ERROR"
FAILED_STATUSES = frozenset({"FAILED", "EXPIRED", "CANCELLED"})
XCOM_KEYS = ("batch_id", "status", "output_file_id", "error_file_id")


def finish_wait(
    context: Any, event: dict[str, Any], *, fail_on_request_errors: bool = False, log: Any = None
) -> dict[str, Any]:
    """Push the outcome to XCom and return it, or raise what the outcome means.

    FAILED, EXPIRED and CANCELLED raise :class:`AirflowFailException`: the batch is final, so a task
    retry could not change it. The file ids are pushed first, since partial results of a failed
    batch stay available (and billed).
    """
    if not isinstance(event, dict) or "status" not in event:
        raise AirflowException(f"the batch wait ended with an event this provider cannot read: {event!r}")
    status = str(event["status"])
    batch_id = event.get("batch_id")
    if status == EVENT_TIMEOUT:
        raise AirflowSensorTimeout(event.get("error") or f"Together batch {batch_id}: timed out waiting")
    if status == EVENT_ERROR:
        message = f"waiting for Together batch {batch_id} failed: {event.get('error')}"
        raise AirflowException(message) if event.get("retryable") else AirflowFailException(message)

    result = {key: event.get(key) for key in XCOM_KEYS}
    ti = context["ti"]
    for key, value in result.items():
        xcom_push(ti, key, value)

    files = f"output file {result['output_file_id']}, error file {result['error_file_id']}"
    if status in FAILED_STATUSES:
        reason = event.get("error") or "Together gave no reason"
        raise AirflowFailException(f"Together batch {batch_id} ended {status}: {reason} ({files})")
    if status != "COMPLETED":
        raise AirflowException(f"Together batch {batch_id} ended with unexpected status {status!r}")
    if result["error_file_id"]:
        if fail_on_request_errors:
            raise AirflowFailException(
                f"Together batch {batch_id} completed, but some requests failed: their errors are in "
                f"file {result['error_file_id']} (fail_on_request_errors=True)"
            )
        if log is not None:
            log.warning(
                "Together batch %s completed, but some requests failed. Their errors are in file %s "
                "(XCom key 'error_file_id'; fetch it with DownloadBatchFileOperator).",
                batch_id,
                result["error_file_id"],
            )
    return result
