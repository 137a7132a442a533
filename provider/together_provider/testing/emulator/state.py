"""The emulator's store of files and batches, and the clock that moves batches along.

Batches advance lazily: nothing runs in the background, each read works out where the batch should be by
now (monotonic time since creation plus any offset added through the control API) and does the work that
became due (validating the input, writing outputs) at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from . import processing
from .faults import FaultPlan
from .records import ACTIVE_STATUSES, ALL_STATUSES, BatchRecord, FileRecord, InputPlan, LineRef

# Where progress stops for a batch that must never finish: low enough that nobody mistakes it for done.
NEVER_FINISH_PROGRESS = 50.0
REQUEST_LOG_LIMIT = 100_000


@dataclass
class MultipartUpload:
    upload_id: str
    file_id: str
    num_parts: int
    parts: dict[int, Path] = field(default_factory=dict)


class EmulatorState:
    def __init__(
        self,
        api_key: str,
        data_dir: Path,
        *,
        validating_seconds: float = 1.0,
        processing_seconds: float = 2.0,
        latency_ms: float = 0.0,
        max_requests_per_batch: int = processing.MAX_REQUESTS,
        max_bytes_per_batch: int = processing.MAX_BYTES,
    ) -> None:
        self.api_key = api_key
        self.data_dir = Path(data_dir)
        self.files_dir = self.data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.validating_seconds = validating_seconds
        self.processing_seconds = processing_seconds
        self.latency_ms = latency_ms
        self.clock_offset = 0.0
        self._initial_clock = (validating_seconds, processing_seconds, latency_ms)
        self._initial_limits = (max_requests_per_batch, max_bytes_per_batch)
        self.max_requests_per_batch, self.max_bytes_per_batch = self._initial_limits
        self.files: dict[str, FileRecord] = {}
        self.batches: dict[str, BatchRecord] = {}
        self.multipart: dict[str, MultipartUpload] = {}
        self.request_log: list[dict] = []
        # Flaky requests' answers so far, and the custom ids whose "expire once" was spent (processing.py).
        self.attempts: dict[str, int] = {}
        self.expired_once: set[str] = set()
        self.faults = FaultPlan()
        # Faults given on the command line survive a reset, so a chaos run stays chaotic between tests.
        self.default_faults: dict = {}

    def now(self) -> float:
        return time.monotonic() + self.clock_offset

    def reset(self) -> None:
        self.files.clear()
        self.batches.clear()
        self.multipart.clear()
        self.request_log.clear()
        self.attempts.clear()
        self.expired_once.clear()
        self.faults = FaultPlan.from_dict(self.default_faults)
        self.clock_offset = 0.0
        self.validating_seconds, self.processing_seconds, self.latency_ms = self._initial_clock
        self.max_requests_per_batch, self.max_bytes_per_batch = self._initial_limits
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self.files_dir.mkdir(parents=True, exist_ok=True)

    def set_faults(self, script: dict) -> dict:
        """Replace the fault script, or add to it when the script says ``"append": true``."""
        script = dict(script)
        append = bool(script.pop("append", False))
        plan = FaultPlan.from_dict(script)
        if append:
            self.faults.rules.extend(plan.rules)
            self.faults.random = plan.random or self.faults.random
        else:
            self.faults = plan
        return self.faults.to_dict()

    def set_clock(self, values: dict) -> dict:
        """Durations apply to batches created afterwards; ``advance_seconds`` moves every batch forward."""
        keys = ("validating_seconds", "processing_seconds", "latency_ms", "advance_seconds")
        numbers = {key: float(values[key]) for key in keys if values.get(key) is not None}
        if any(value < 0 for value in numbers.values()):
            raise ValueError("clock values must not be negative")
        self.validating_seconds = numbers.get("validating_seconds", self.validating_seconds)
        self.processing_seconds = numbers.get("processing_seconds", self.processing_seconds)
        self.latency_ms = numbers.get("latency_ms", self.latency_ms)
        self.clock_offset += numbers.get("advance_seconds", 0.0)
        return self.clock_settings()

    def set_limits(self, values: dict) -> dict:
        """Per-batch limits for batches created afterwards: an input over either fails validation, as
        Together fails it; tests set them low instead of building 50,000-line files."""
        for key in ("max_requests_per_batch", "max_bytes_per_batch"):
            value = values.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer")
            setattr(self, key, value)
        return self.limits()

    def limits(self) -> dict:
        return {
            "max_requests_per_batch": self.max_requests_per_batch,
            "max_bytes_per_batch": self.max_bytes_per_batch,
        }

    def clock_settings(self) -> dict:
        return {
            "validating_seconds": self.validating_seconds,
            "processing_seconds": self.processing_seconds,
            "latency_ms": self.latency_ms,
            "offset_seconds": self.clock_offset,
        }

    def log_request(self, entry: dict) -> None:
        if len(self.request_log) >= REQUEST_LOG_LIMIT:
            del self.request_log[: REQUEST_LOG_LIMIT // 10]
        self.request_log.append(entry)

    # Files

    def new_file(self, filename: str, purpose: str, file_type: str) -> FileRecord:
        file_id = f"file-{uuid.uuid4()}"
        record = FileRecord(
            id=file_id,
            filename=filename,
            purpose=purpose,
            file_type=file_type,
            created_at=int(time.time()),
            path=self.files_dir / file_id,
            upload_token=secrets.token_urlsafe(16),
        )
        self.files[file_id] = record
        return record

    def visible_files(self) -> list[FileRecord]:
        return sorted(
            (f for f in self.files.values() if f.uploaded), key=lambda f: f.created_at, reverse=True
        )

    def get_file(self, file_id: str) -> FileRecord | None:
        record = self.files.get(file_id)
        return record if record is not None and record.uploaded else None

    def find_duplicate(self, checksum: str, purpose: str) -> FileRecord | None:
        for record in self.files.values():
            if record.uploaded and record.checksum == checksum and record.purpose == purpose:
                return record
        return None

    def discard_file(self, file_id: str) -> None:
        record = self.files.pop(file_id, None)
        if record is not None:
            record.path.unlink(missing_ok=True)

    def mark_uploaded(self, record: FileRecord, size: int, checksum: str | None, *, processed: bool) -> None:
        record.bytes = size
        record.checksum = checksum
        record.uploaded = True
        record.processed = processed

    async def create_synthetic_file(
        self, size: object, purpose: str = "batch-generated", filename: str | None = None
    ) -> FileRecord:
        """A file of exactly ``size`` bytes of valid output lines, written in chunks (download benchmarks)."""
        minimum = processing.synthetic_min_bytes()
        if not isinstance(size, int) or isinstance(size, bool) or size < minimum:
            raise ValueError(f"bytes must be an integer of at least {minimum}")
        record = self.new_file(filename or f"synthetic_{size}.jsonl", purpose, "jsonl")
        try:
            await asyncio.to_thread(processing.write_synthetic, record.path, size)
        except OSError:
            self.discard_file(record.id)
            raise
        self.mark_uploaded(record, record.path.stat().st_size, None, processed=True)
        return record

    # Batches

    def create_batch(self, input_file: FileRecord, endpoint: str, model_id: str | None) -> BatchRecord:
        batch = BatchRecord(
            id=str(uuid.uuid4()),
            input_file_id=input_file.id,
            endpoint=endpoint,
            file_size_bytes=input_file.bytes,
            created_wall=time.time(),
            created_mono=self.now(),
            validating_seconds=self.validating_seconds,
            processing_seconds=self.processing_seconds,
            model_id=model_id,
            max_requests=self.max_requests_per_batch,
            max_bytes=self.max_bytes_per_batch,
        )
        self.batches[batch.id] = batch
        return batch

    def batches_newest_first(self) -> list[BatchRecord]:
        return sorted(self.batches.values(), key=lambda b: b.created_mono, reverse=True)

    async def refresh(self, batch: BatchRecord) -> BatchRecord:
        async with batch.lock:
            if batch.terminal or batch.pinned:
                return batch
            elapsed = self.now() - batch.created_mono
            validating = batch.validating_seconds
            if elapsed < validating:
                batch.status, batch.progress = "VALIDATING", 0.0
                return batch
            plan = await self._plan(batch)
            if not plan.ok:
                self._finish(batch, "FAILED", validating, error=plan.error)
                return batch
            if batch.scenario is None:
                batch.scenario = processing.scenario(plan, self.expired_once)
                if batch.scenario == "expire":
                    # Spent when decided, so a batch made meanwhile with the same request completes.
                    self.expired_once |= processing.expire_once_ids(plan)
            kind = batch.scenario
            processing_seconds = batch.processing_seconds
            fraction = (elapsed - validating) / processing_seconds if processing_seconds > 0 else 1.0
            if kind == "never":
                batch.status = "IN_PROGRESS"
                batch.progress = min(fraction * 100.0, NEVER_FINISH_PROGRESS)
                return batch
            if fraction < 1.0:
                batch.status, batch.progress = "IN_PROGRESS", fraction * 100.0
                return batch
            done_at = validating + processing_seconds
            everything = processing.workable(plan.lines)
            if kind == "fail":
                refs = processing.lines_before_failure(plan)
                await self._produce(batch, refs)
                self._finish(
                    batch,
                    "FAILED",
                    done_at,
                    error="emulator: batch failed on purpose",
                    progress=_share(refs, everything),
                )
            elif kind == "expire":
                refs = everything[: len(everything) // 2]
                await self._produce(batch, refs)
                self._finish(
                    batch,
                    "EXPIRED",
                    done_at,
                    error="emulator: batch expired on purpose; partial results were kept",
                    progress=_share(refs, everything),
                )
            else:
                await self._produce(batch, everything)
                self._finish(batch, "COMPLETED", done_at, progress=100.0)
            return batch

    async def cancel(self, batch: BatchRecord) -> str | None:
        """Cancel an active batch; returns an error text when the batch may not be cancelled."""
        await self.refresh(batch)
        async with batch.lock:
            if batch.status not in ACTIVE_STATUSES:
                return (
                    f"batch {batch.id} is {batch.status} and cannot be cancelled: "
                    "only VALIDATING or IN_PROGRESS batches can be cancelled"
                )
            if batch.status == "IN_PROGRESS" and batch.plan is not None and batch.plan.ok:
                everything = processing.workable(batch.plan.lines)
                done = math.floor(len(everything) * batch.progress / 100.0)
                await self._produce(batch, everything[:done])
            self._finish(batch, "CANCELLED", self.now() - batch.created_mono, progress=batch.progress)
            return None

    async def force_status(self, batch: BatchRecord, status: str, error: str | None) -> BatchRecord:
        if status not in ALL_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ALL_STATUSES)}")
        async with batch.lock:
            batch.pinned = True
            at = self.now() - batch.created_mono
            if status in ACTIVE_STATUSES:
                batch.status = status
                batch.progress = 0.0 if status == "VALIDATING" else batch.progress
                batch.completed_wall = None
                batch.error = error
                return batch
            if status == "COMPLETED":
                plan = await self._plan(batch)
                if plan.ok and batch.output_file_id is None and batch.error_file_id is None:
                    await self._produce(batch, processing.workable(plan.lines))
                self._finish(batch, status, at, error=error, progress=100.0)
                return batch
            self._finish(
                batch,
                status,
                at,
                error=error or f"emulator: status forced to {status}",
                progress=batch.progress,
            )
            return batch

    async def _plan(self, batch: BatchRecord) -> InputPlan:
        if batch.plan is None:
            source = self.get_file(batch.input_file_id)
            if source is None or not source.path.exists():
                batch.plan = InputPlan(ok=False, error=f"input file {batch.input_file_id} no longer exists")
            else:
                batch.plan = await asyncio.to_thread(
                    processing.validate_input, source.path, batch.max_requests, batch.max_bytes
                )
        return batch.plan

    def _finish(
        self,
        batch: BatchRecord,
        status: str,
        at_elapsed: float,
        *,
        error: str | None = None,
        progress: float = 0.0,
    ) -> None:
        batch.status = status
        batch.error = error
        batch.progress = progress
        batch.completed_wall = batch.created_wall + max(at_elapsed, 0.0)

    async def _produce(self, batch: BatchRecord, refs: list[LineRef]) -> None:
        source = self.get_file(batch.input_file_id)
        if not refs or source is None:
            return
        output = self.new_file(f"batch_{batch.id}_output.jsonl", "batch-generated", "jsonl")
        errors = self.new_file(f"batch_{batch.id}_error.jsonl", "batch-generated", "jsonl")
        successes, failures = await asyncio.to_thread(
            processing.write_results,
            batch.id,
            batch.endpoint,
            int(batch.created_wall),
            source.path,
            refs,
            output.path,
            errors.path,
            self.attempts,
        )
        for record, count, attr in (
            (output, successes, "output_file_id"),
            (errors, failures, "error_file_id"),
        ):
            if count:
                self.mark_uploaded(record, record.path.stat().st_size, None, processed=True)
                setattr(batch, attr, record.id)
            else:
                self.discard_file(record.id)

    def cleanup_multipart(self, upload: MultipartUpload) -> None:
        for part in upload.parts.values():
            with contextlib.suppress(OSError):
                part.unlink()
        self.multipart.pop(upload.upload_id, None)


def _share(part: list[LineRef], whole: list[LineRef]) -> float:
    return 100.0 * len(part) / len(whole) if whole else 0.0
