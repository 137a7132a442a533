"""The Batch API's objects as plain data: parsed leniently, exported as JSON-safe dicts for XCom."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pendulum

from together_provider.client.errors import InvalidResponseError, one_line
from together_provider.client.ids import id_problem

log = logging.getLogger(__name__)


class BatchStatus(StrEnum):
    VALIDATING = "VALIDATING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"
    # Undocumented, seen in SDK 1.x only: a cancel that has not finished yet.
    CANCELING = "CANCELING"
    # Anything Together may add later. It is never terminal, so a waiter keeps waiting
    # (and warns) instead of crashing or mistaking it for success.
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: Any) -> BatchStatus:
        text = str(value or "").strip().upper()
        if text == "CANCELLING":
            text = "CANCELING"
        try:
            return cls(text)
        except ValueError:
            log.warning(
                "Together returned a batch status this provider does not know: %r. "
                "Treating it as still running; please report it if it persists.",
                value,
            )
            return cls.UNKNOWN

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_success(self) -> bool:
        return self is BatchStatus.COMPLETED

    @property
    def is_failure(self) -> bool:
        return self.is_terminal and not self.is_success


_TERMINAL = frozenset({BatchStatus.COMPLETED, BatchStatus.FAILED, BatchStatus.EXPIRED, BatchStatus.CANCELLED})

BATCH_ENDPOINTS = (
    "/v1/chat/completions",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/completions",
)


def checked_endpoint(endpoint: str) -> str:
    """The endpoint a batch targets; every caller (the submit operator, the create request) checks here."""
    if endpoint not in BATCH_ENDPOINTS:
        raise ValueError(
            f"endpoint {endpoint!r} is not supported by the Batch API; use one of {BATCH_ENDPOINTS}"
        )
    return endpoint


def _parse_time(value: Any) -> pendulum.DateTime | None:
    """ISO-8601 strings (batches) and Unix seconds (files) both occur; garbage becomes None."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return pendulum.from_timestamp(value, tz="UTC")
        text = str(value)
        try:
            # The common case, at a third of pendulum.parse's cost: every poll of every wait parses three.
            exact = datetime.fromisoformat(text)
        except ValueError:
            parsed = pendulum.parse(text)
        else:
            parsed = pendulum.instance(exact if exact.tzinfo else exact.replace(tzinfo=UTC))
    except (ValueError, TypeError, OverflowError):
        log.warning("Could not read timestamp %r from Together's answer; ignoring it.", value)
        return None
    return parsed if isinstance(parsed, pendulum.DateTime) else None


def _iso(value: pendulum.DateTime | None) -> str | None:
    return value.in_timezone("UTC").isoformat() if value is not None else None


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _opt_id(value: Any, what: str) -> str | None:
    """An id from an answer, which later becomes a URL path segment and a log line's text: one that
    could not be an id (dots only, a line break) means the answer is not Together's."""
    text = _opt_str(value)
    problem = None if text is None else id_problem(text)
    if problem is not None:
        raise InvalidResponseError(f"Together's answer holds a {what} that cannot be an id: it {problem}")
    return text


def _text(value: Any, limit: int = 2000) -> str | None:
    """Free text from an answer, for messages and logs: on one line, printable, and bounded."""
    text = _opt_str(value)
    if text is None:
        return None
    return one_line(text, limit)


def _opt_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# Unknown fields are kept for a curious reader, not relied on: a bounded few, each small and flat, so an
# answer padded with large or deep values (up to the transport's cap) is not held on to with the model.
MAX_EXTRA_FIELDS = 32
MAX_EXTRA_TEXT = 256


def _extra(data: Mapping[str, Any], known: set[str]) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    for key, value in data.items():
        if len(kept) == MAX_EXTRA_FIELDS:
            break
        if key in known or not isinstance(key, str) or len(key) > MAX_EXTRA_TEXT:
            continue
        small = isinstance(value, str) and len(value) <= MAX_EXTRA_TEXT
        if small or value is None or isinstance(value, (bool, int, float)):
            kept[key] = value
    return kept


def _require_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidResponseError(f"expected a {what} object from Together, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class BatchJob:
    """A Together batch. Only ``id`` and ``status`` are required to make sense of it."""

    id: str
    status: BatchStatus
    raw_status: str
    user_id: str | None = None
    input_file_id: str | None = None
    file_size_bytes: int | None = None
    endpoint: str | None = None
    progress: float | None = None
    model_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    error: str | None = None
    created_at: pendulum.DateTime | None = None
    job_deadline: pendulum.DateTime | None = None
    completed_at: pendulum.DateTime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: Any) -> BatchJob:
        data = _require_mapping(data, "batch")
        batch_id = _opt_id(data.get("id"), "batch id")
        if batch_id is None:
            raise InvalidResponseError("Together's batch object has no 'id'")
        if data.get("status") in (None, ""):
            raise InvalidResponseError(f"Together's batch object {batch_id} has no 'status'")
        raw_status = _text(data.get("status"), 64) or ""
        known = {f for f in cls.__dataclass_fields__ if f not in ("raw_status", "extra")}
        return cls(
            id=batch_id,
            status=BatchStatus.parse(data.get("status")),
            raw_status=raw_status,
            user_id=_text(data.get("user_id"), 256),
            input_file_id=_opt_id(data.get("input_file_id"), "file id"),
            file_size_bytes=_opt_int(data.get("file_size_bytes")),
            endpoint=_text(data.get("endpoint"), 256),
            progress=normalize_progress(data.get("progress")),
            model_id=_text(data.get("model_id"), 256),
            output_file_id=_opt_id(data.get("output_file_id"), "file id"),
            error_file_id=_opt_id(data.get("error_file_id"), "file id"),
            error=_text(data.get("error")),
            created_at=_parse_time(data.get("created_at")),
            job_deadline=_parse_time(data.get("job_deadline")),
            completed_at=_parse_time(data.get("completed_at")),
            extra=_extra(data, known),
        )

    def to_xcom(self) -> dict[str, Any]:
        """JSON-safe: strings, numbers and None only (unknown extra fields are left out)."""
        return {
            "id": self.id,
            "status": self.raw_status if self.status is BatchStatus.UNKNOWN else self.status.value,
            "user_id": self.user_id,
            "input_file_id": self.input_file_id,
            "file_size_bytes": self.file_size_bytes,
            "endpoint": self.endpoint,
            "progress": self.progress,
            "model_id": self.model_id,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "job_deadline": _iso(self.job_deadline),
            "completed_at": _iso(self.completed_at),
        }


def normalize_progress(value: Any) -> float | None:
    """Progress is a percentage (0-100). An early draft sent a 0-1 fraction, but 0.5 could mean either,
    so values are taken as percentages and only clamped."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number != number:  # NaN
        return None
    return max(0.0, min(100.0, number))


@dataclass(frozen=True)
class CreatedBatch:
    """The create call's envelope: the new batch and Together's optional warning."""

    job: BatchJob
    warning: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> CreatedBatch:
        data = _require_mapping(data, "batch creation")
        job = data.get("job")
        if job is None and "id" in data and "status" in data:
            # Older deployments answered the bare job; accept it rather than lose a created batch.
            job = data
        if not isinstance(job, Mapping) or not job.get("id"):
            warning = _text(data.get("warning"), 500)
            raise InvalidResponseError(
                "Together's answer to batch creation names no batch (no 'job.id'), though one may have "
                "been created: a retry of the task looks for it by the task's run key before creating "
                "another" + (f"; warning: {warning}" if warning else ""),
                # Not for the call (a second create could pay twice) but for the task: its retry finds
                # a batch this create made instead of creating one.
                transient=True,
            )
        return cls(job=BatchJob.from_api(job), warning=_text(data.get("warning"), 500))


@dataclass(frozen=True)
class TogetherFile:
    """An uploaded or generated file. ``created_at`` arrives as Unix seconds for files."""

    id: str
    filename: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    file_type: str | None = None
    processed: bool | None = None
    created_at: pendulum.DateTime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_api(cls, data: Any) -> TogetherFile:
        data = _require_mapping(data, "file")
        file_id = _opt_id(data.get("id"), "file id")
        if file_id is None:
            raise InvalidResponseError("Together's file object has no 'id'")
        processed = data.get("Processed", data.get("processed"))
        known = {"id", "filename", "bytes", "purpose", "FileType", "file_type", "Processed", "processed"}
        return cls(
            id=file_id,
            filename=_text(data.get("filename"), 1024),
            bytes=_opt_int(data.get("bytes")),
            purpose=_opt_str(data.get("purpose")),
            file_type=_opt_str(data.get("FileType", data.get("file_type"))),
            processed=None if processed is None else bool(processed),
            created_at=_parse_time(data.get("created_at")),
            extra=_extra(data, known | {"created_at"}),
        )

    def to_xcom(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "filename": self.filename,
            "bytes": self.bytes,
            "purpose": self.purpose,
            "file_type": self.file_type,
            "processed": self.processed,
            "created_at": _iso(self.created_at),
        }


def parse_batch_list(data: Any) -> list[BatchJob]:
    items = data.get("data") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise InvalidResponseError("expected a list of batches from Together")
    return [BatchJob.from_api(item) for item in items]


def parse_file_list(data: Any) -> list[TogetherFile]:
    items = data.get("data") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise InvalidResponseError("expected {'data': [...]} listing files from Together")
    return [TogetherFile.from_api(item) for item in items]


def parse_deleted(data: Any) -> bool:
    data = _require_mapping(data, "file deletion")
    return bool(data.get("deleted"))
