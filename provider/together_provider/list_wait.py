"""Waiting on many batches as one task, without I/O: the ids a task was given, each batch's own
``WaitTracker``, the one event that ends the wait, and what that event means for the task.

The trigger (``BatchListStatusTrigger``) and the worker's poll (``BatchWait.poll_list``) both drive a
:class:`ListTracker`, so a list wait ends the same way deferred or poking: all COMPLETED succeeds; the
first batch that ends FAILED, EXPIRED or CANCELLED ends the wait at once, naming it. Each id keeps its
own poll cadence, failure count and progress estimate, exactly as a wait on that one batch would.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from together_provider.client.ids import checked_id, shown
from together_provider.outcome import EVENT_ERROR, EVENT_TIMEOUT, WaitTracker
from together_provider.waiting import require_id

if TYPE_CHECKING:
    from together_provider.client.models import BatchJob

XCOM_LIST_KEYS = ("batch_ids", "statuses", "output_file_ids", "error_file_ids")
# How many ids a message names before it says "and N more": a split of a big file may have hundreds.
NAMED_IDS = 10


def batch_ids_of(value: Any, field: str = "batch_id") -> str | list[str]:
    """One id as a string, or several as a list, from what a templated field rendered.

    A list (or any sequence, such as the lazy one a mapped task's output gives) is a list wait. So is a
    string that reads as a list, since Jinja renders an XCom list as its Python repr (``"['b1', 'b2']"``)
    unless the DAG renders native objects, and ``| tojson`` renders it as JSON. Anything else is one id.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return require_id(value, field)
        value = _parsed_list(text, field)
    elif not isinstance(value, Sequence) or isinstance(value, bytes | bytearray):
        return require_id(value, field)
    ids = list(value)
    if not ids:
        raise ValueError(f"{field} is an empty list: give at least one Together batch id to wait for")
    seen: set[str] = set()
    checked = []
    for index, item in enumerate(ids):
        item = checked_id(item, f"{field}[{index}]")
        if item in seen:
            raise ValueError(f"{field} lists batch {item!r} twice: give each batch once")
        seen.add(item)
        checked.append(item)
    return checked


def _parsed_list(text: str, field: str) -> list[Any]:
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(parsed, list | tuple):
            return list(parsed)
    raise ValueError(
        f"{field} looks like a list but is neither a JSON list nor a Python list literal: {shown(text, 200)}"
    )


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


# ---- what the event means for the task ----------------------------------------------------------


def finish_list_wait(
    context: Any,
    event: dict[str, Any],
    *,
    fail_on_request_errors: bool = False,
    soft_fail: bool = False,
    log: Any = None,
) -> dict[str, Any]:
    """:func:`outcome.finish_wait` for a list wait: push the lists and return them, or raise what the
    ending means. The lists are pushed before a failure, as for one batch: the others' results stay."""
    from together_provider._compat import (
        AirflowException,
        AirflowSensorTimeout,
        AirflowSkipException,
        xcom_push,
    )
    from together_provider.outcome import failure

    status = str(event["status"])
    ids = list(event.get("batch_ids") or [])
    culprit = event.get("batch_id")
    if status == EVENT_TIMEOUT:
        message = event.get("error") or f"Together batches {named(ids)}: timed out waiting"
        raise AirflowSkipException(message) if soft_fail else AirflowSensorTimeout(message)
    if status == EVENT_ERROR:
        which = (
            f"Together batch {culprit} (one of {len(ids)})" if culprit else f"Together batches {named(ids)}"
        )
        message = f"waiting for {which} failed: {event.get('error')}"
        if event.get("retryable"):
            raise AirflowException(message)
        raise failure(message, soft_fail=soft_fail)

    result = {key: list(event.get(key) or []) for key in XCOM_LIST_KEYS}
    ti = context["ti"]
    for key, value in result.items():
        xcom_push(ti, key, value)

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
    from together_provider.assets import annotate_outlets

    annotate_outlets(context, result)
    return result
