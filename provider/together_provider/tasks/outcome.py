"""What a wait's event means for the task, in one place: push the outcome to XCom and return it, or raise
what it means (fail without retry, retry, time out, skip under ``soft_fail``), for a wait on one batch or
on many. Every task path also runs its calls in :func:`task_errors`, so an error no retry can fix fails the
task at once on every path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from together_provider._compat import (
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
    xcom_push,
)
from together_provider.client.errors import permanent_failure
from together_provider.client.models import BatchStatus
from together_provider.client.wait import (
    EVENT_ERROR,
    EVENT_TIMEOUT,
    NAMED_IDS,
    XCOM_LIST_KEYS,
    files_text,
    named,
    request_errors_line,
    wait_result,
)
from together_provider.tasks.assets import annotate_outlets

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
    An event of a wait on several batches (it has ``batch_ids``) goes to :func:`finish_list_wait`.
    """
    if not isinstance(event, dict) or "status" not in event:
        raise AirflowException(f"the batch wait ended with an event this provider cannot read: {event!r}")
    if "batch_ids" in event:
        return finish_list_wait(
            context, event, fail_on_request_errors=fail_on_request_errors, soft_fail=soft_fail, log=log
        )
    status = str(event["status"])
    batch_id = event.get("batch_id")
    _raise_unfinished(event, f"Together batch {batch_id}", soft_fail=soft_fail)
    result = _pushed(context, wait_result(event))

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
            log.warning("%s", request_errors_line(result))
    annotate_outlets(context, result)
    return result


# ---- a wait on many batches ----------------------------------------------------------


def finish_list_wait(
    context: Any,
    event: dict[str, Any],
    *,
    fail_on_request_errors: bool = False,
    soft_fail: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """:func:`finish_wait` for a list wait: push the lists and return them, or raise what the
    ending means. The lists are pushed before a failure, as for one batch: the others' results stay."""
    status = str(event["status"])
    ids = list(event.get("batch_ids") or [])
    culprit = event.get("batch_id")
    which = f"Together batch {culprit} (one of {len(ids)})" if culprit else f"Together batches {named(ids)}"
    _raise_unfinished(event, which, soft_fail=soft_fail)
    result = _pushed(context, {key: list(event.get(key) or []) for key in XCOM_LIST_KEYS})

    if status != "COMPLETED":
        reason = event.get("error") or "Together gave no reason"
        position = ids.index(culprit) + 1 if culprit in ids else "?"
        message = f"Together batch {culprit} ({position} of {len(ids)}) ended {status}: {reason}"
        cancelled, running = event.get("cancelled") or [], event.get("running") or []
        if cancelled:
            message += f"; cancelled the {len(cancelled)} still running: {named(cancelled)}"
        if running:
            message += (
                f"; left {len(running)} running: {named(running)} (cancel_rest_on_failure=True cancels them)"
            )
        raise failure(message, soft_fail=soft_fail)
    with_errors = [(bid, fid) for bid, fid in zip(ids, result["error_file_ids"], strict=False) if fid]
    if with_errors:
        where = ", ".join(f"{bid}: {fid}" for bid, fid in with_errors[:NAMED_IDS])
        if fail_on_request_errors:
            raise failure(
                f"{len(ids)} Together batches completed, but some requests failed in "
                f"{len(with_errors)} of them; their error files are {where} (fail_on_request_errors=True)",
                soft_fail=soft_fail,
            )
        if log is not None:
            log.warning(
                "%d Together batches completed, but some requests failed in %d of them. Their error files "
                "are %s (XCom key 'error_file_ids'; fetch them with DownloadBatchFileOperator).",
                len(ids),
                len(with_errors),
                where,
            )
    annotate_outlets(context, result)
    return result


def _raise_unfinished(event: dict[str, Any], which: str, *, soft_fail: bool) -> None:
    """Raise what a wait that ended before its batches did means: a timeout, or polling that failed (a
    task retry may fix the latter when it kept failing on what waiting fixes)."""
    status = str(event["status"])
    if status == EVENT_TIMEOUT:
        message = event.get("error") or f"{which}: timed out waiting"
        raise AirflowSkipException(message) if soft_fail else AirflowSensorTimeout(message)
    if status == EVENT_ERROR:
        message = f"waiting for {which} failed: {event.get('error')}"
        if event.get("retryable"):
            raise AirflowException(message)
        raise failure(message, soft_fail=soft_fail)


def _pushed(context: Any, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` pushed to XCom key by key, before any failure: partial results stay reachable."""
    ti = context["ti"]
    for key, value in result.items():
        xcom_push(ti, key, value)
    return result
