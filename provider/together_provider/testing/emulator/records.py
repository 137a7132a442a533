"""The emulator's file and batch records and their wire form.

The spec declares no BatchJob field nullable, so absent optional fields are left out of the wire form
instead of being sent as null.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

ACTIVE_STATUSES = ("VALIDATING", "IN_PROGRESS")
TERMINAL_STATUSES = ("COMPLETED", "FAILED", "EXPIRED", "CANCELLED")
ALL_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES

USER_ID = "emulator-user"
JOB_WINDOW_SECONDS = 24 * 3600


def iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(int(ts), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FileRecord:
    id: str
    filename: str
    purpose: str
    file_type: str
    created_at: int
    path: Path
    bytes: int = 0
    # Content is on disk (the SDK flow creates the record before the PUT brings the bytes).
    uploaded: bool = False
    processed: bool = False
    checksum: str | None = None
    upload_token: str | None = None

    def to_api(self) -> dict:
        return {
            "id": self.id,
            "object": "file",
            "created_at": self.created_at,
            "filename": self.filename,
            "bytes": self.bytes,
            "purpose": self.purpose,
            "FileType": self.file_type,
            "Processed": self.processed,
            # SDK 3.x copies this into its FileResponse after an upload.
            "processing_status": "COMPLETED" if self.processed else "PENDING",
        }


@dataclass
class LineRef:
    """Where one input line sits in the input file, so outputs can be produced without loading it."""

    offset: int
    length: int
    custom_id: str
    model: str


@dataclass
class InputPlan:
    ok: bool
    error: str | None = None
    lines: list[LineRef] = field(default_factory=list)


@dataclass
class BatchRecord:
    id: str
    input_file_id: str
    endpoint: str
    file_size_bytes: int
    created_wall: float
    created_mono: float
    validating_seconds: float
    processing_seconds: float
    model_id: str | None = None
    status: str = "VALIDATING"
    progress: float = 0.0
    error: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed_wall: float | None = None
    # Set by the control API: the clock no longer moves this batch.
    pinned: bool = False
    plan: InputPlan | None = None
    # How the batch ends (processing.scenario), decided on its first look past validation.
    scenario: str | None = None
    # The per-batch limits in force when the batch was created (EmulatorState.set_limits).
    max_requests: int = 50_000
    max_bytes: int = 100 * 1024 * 1024
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_api(self) -> dict:
        job: dict = {
            "id": self.id,
            "user_id": USER_ID,
            "input_file_id": self.input_file_id,
            "file_size_bytes": self.file_size_bytes,
            "status": self.status,
            "job_deadline": iso(self.created_wall + JOB_WINDOW_SECONDS),
            "created_at": iso(self.created_wall),
            "endpoint": self.endpoint,
            "progress": round(float(self.progress), 2),
        }
        optional = {
            "model_id": self.model_id,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "error": self.error,
            "completed_at": iso(self.completed_wall) if self.completed_wall is not None else None,
        }
        job.update({key: value for key, value in optional.items() if value is not None})
        return job
