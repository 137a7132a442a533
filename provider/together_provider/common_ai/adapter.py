"""TogetherBatchAdapter: common.ai's batch contract on the provider's own client core.

Every call goes through :class:`~together_provider.hooks.together.TogetherHook` (its retry policy, its
streamed upload and download, its error classes), so ``@task.llm_batch`` on Together behaves like the
provider's own operators: a create is retried only where it provably never reached Together, and a 404
carries ``status_code`` as common.ai's re-attach check expects.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Literal

from together_provider._compat import (
    BatchAdapter,
    BatchRequest,
    BatchState,
    ExtractedOutput,
    OutputSpec,
    RawResultItem,
    SubmitResult,
    mask_secret,
)
from together_provider.client import jsonl, resubmission
from together_provider.client import results as records
from together_provider.client.models import BatchJob, BatchStatus
from together_provider.client.settings import ConnectionSettings
from together_provider.common_ai import lines
from together_provider.hooks.together import TogetherHook

log = logging.getLogger(__name__)

# common.ai's vocabularies (base.BatchStatus and RawResultItem.provider_status), spelled out so the
# mappings below are checked where common.ai is absent too.
JobStatus = Literal["in_progress", "completed", "failed", "expired", "cancelled"]
ItemStatus = Literal["success", "errored", "expired", "cancelled"]

# Together's seven statuses in common.ai's five. CANCELING (undocumented: a cancel still under way) and
# any status Together adds later are still running, so the wait goes on rather than ending early.
_STATUS: dict[BatchStatus, JobStatus] = {
    BatchStatus.VALIDATING: "in_progress",
    BatchStatus.IN_PROGRESS: "in_progress",
    BatchStatus.CANCELING: "in_progress",
    BatchStatus.UNKNOWN: "in_progress",
    BatchStatus.COMPLETED: "completed",
    BatchStatus.FAILED: "failed",
    BatchStatus.EXPIRED: "expired",
    BatchStatus.CANCELLED: "cancelled",
}
# What a request Together never answered means, by how the batch ended. In a completed batch it is
# left to common.ai, which writes a "missing" row for every index that did not come back.
_UNANSWERED: dict[BatchStatus, ItemStatus] = {
    BatchStatus.EXPIRED: "expired",
    BatchStatus.CANCELLED: "cancelled",
}
# The stem of the uploaded file's name; resubmission.upload_name adds the key and the fingerprint.
_UPLOAD_STEM = "llm-batch"


class _KeyedHook(TogetherHook):
    """A TogetherHook on settings built from the key and base URL common.ai hands an adapter, rather
    than on a connection it looks up itself."""

    def __init__(self, settings: ConnectionSettings) -> None:
        super().__init__()
        self._given = settings

    @cached_property
    def settings(self) -> ConnectionSettings:
        return self._given


class TogetherBatchAdapter(BatchAdapter):
    """Together AI's Batch API behind ``@task.llm_batch`` and ``LLMBatchOperator``: ``model_id``
    ``"together:<model>"``, with a ``together`` connection (or a ``pydanticai`` one whose password is
    a Together key and whose host, if set, is Together's).

    Key and base URL follow :class:`TogetherHook`: the key is the connection's password, else
    ``TOGETHER_API_KEY``; the host (``api.together.ai``, ``https://api.together.xyz/v1`` and the like)
    defaults to ``TOGETHER_BASE_URL``, else ``https://api.together.ai``. common.ai hands an adapter only
    those two fields, so timeouts and retries are the hook's defaults; to honour a connection's extras,
    construct the adapter with ``client=TogetherHook("<conn id>")``.

    :param client: a :class:`TogetherHook` to use instead of one built from ``api_key``/``base_url``.
    """

    name: ClassVar[str] = "together"
    conn_types: ClassVar[frozenset[str]] = frozenset({"together", "pydanticai"})
    max_requests: ClassVar[int] = jsonl.MAX_LINES
    max_payload_bytes: ClassVar[int] = jsonl.MAX_FILE_BYTES
    # Each Together input line names its own model (body.model).
    allows_per_request_model: ClassVar[bool] = True

    def __init__(
        self, *, api_key: str | None = None, base_url: str | None = None, client: Any | None = None
    ) -> None:
        if client is None:
            settings = ConnectionSettings.from_parts(host=base_url, password=api_key, env=os.environ)
            mask_secret(settings.api_key)
            client = _KeyedHook(settings)
        if not isinstance(client, TogetherHook):
            raise TypeError(f"client must be a TogetherHook, got {type(client).__name__}")
        self._client = client
        self.hook: TogetherHook = client

    # ---- before submit ------------------------------------------------------------------------------

    def build_output_directive(self, spec: OutputSpec) -> dict[str, Any]:
        return lines.output_directive(spec)

    def _lines(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        idempotency_key: str,
        spec: OutputSpec,
        **kwargs: Any,
    ) -> Iterator[dict[str, Any]]:
        return lines.request_lines(
            requests,
            model=model,
            idempotency_key=idempotency_key,
            directive=self.build_output_directive(spec),
            resolve_model=self.resolve_request_model,
            system_prompt=kwargs.get("system_prompt") or "",
            max_tokens=kwargs.get("max_tokens") or 1024,
            request_params=kwargs.get("request_params"),
        )

    def validate_requests(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        output_spec: OutputSpec,
        idempotency_key: str,
        **kwargs: Any,
    ) -> None:
        """Together's limits (50,000 requests, 100 MB per file, 10 MB per line, 64-character custom
        ids) and every per-request model override, checked on the lines submit would send."""
        self.check_custom_id_length(idempotency_key, len(requests), max_length=jsonl.MAX_CUSTOM_ID_CHARS)
        lines.check_limits(
            requests,
            self._lines(requests, model=model, idempotency_key=idempotency_key, spec=output_spec, **kwargs),
        )

    # ---- submit and wait ----------------------------------------------------------------------------

    def submit(
        self,
        requests: list[BatchRequest],
        *,
        model: str,
        idempotency_key: str,
        input_fingerprint: str,
        output_spec: OutputSpec,
        **kwargs: Any,
    ) -> SubmitResult:
        """Write the input file line by line to a temporary file, check it with the provider's own
        validator, upload it and create the batch.

        Together has no batch metadata, so the idempotency key and the input fingerprint travel in the
        uploaded file's name (``resubmission.upload_name``), where :meth:`find_orphaned_batch` reads
        them back.
        """
        name = resubmission.upload_name(_UPLOAD_STEM, idempotency_key, input_fingerprint)
        with tempfile.TemporaryDirectory(prefix="together-llm-batch-") as folder:
            path = Path(folder) / f"{idempotency_key}.jsonl"
            with open(path, "wb") as out:
                for line in self._lines(
                    requests, model=model, idempotency_key=idempotency_key, spec=output_spec, **kwargs
                ):
                    out.write(lines.encoded(line))
            summary = jsonl.validate_input_file(path, endpoint=lines.ENDPOINT)
            uploaded = self.hook.upload_file(path, file_name=name, checksum=summary.sha256)
        batch = self.hook.create_batch(
            uploaded.id, endpoint=lines.ENDPOINT, completion_window=kwargs.get("completion_window")
        )
        log.info(
            "Created Together batch %s (%d requests) from file %s (%s)",
            batch.id,
            summary.lines,
            uploaded.id,
            name,
        )
        return SubmitResult(batch_id=batch.id, provider_input_ref=uploaded.id)

    def get_batch(self, batch_id: str) -> BatchState:
        """Together reports progress, not counts per outcome, so ``counts`` is None: the results are
        counted when they are streamed."""
        job = self.hook.get_batch(batch_id)
        status: JobStatus = _STATUS.get(job.status, "in_progress")
        message = None
        if status in ("failed", "expired"):
            message = f"Together batch {job.id} ended {job.raw_status}" + (
                f": {job.error}" if job.error else "."
            )
        return BatchState(status=status, counts=None, error_message=message)

    def cancel_batch(self, batch_id: str) -> None:
        """Safe to repeat: a batch that has already finished is left as it is."""
        self.hook.cancel_batch(batch_id)

    # ---- results ------------------------------------------------------------------------------------

    def iter_results(self, batch_id: str) -> Iterator[RawResultItem]:
        """The output file's answers, then the error file's, streamed through
        :meth:`TogetherHook.iter_results`; in an EXPIRED or CANCELLED batch, each request that came back
        in neither is reported as expired or cancelled. The batch is read (and an unknown or unfinished
        one refused) before this returns."""
        job = self.hook.get_batch(batch_id)
        return _items(self.hook.iter_results(job), job)

    def extract_output(self, raw: RawResultItem, spec: OutputSpec) -> ExtractedOutput:
        if raw.raw is None:
            return ExtractedOutput(kind="absent")
        return ExtractedOutput(kind="json_text" if spec.is_structured else "text", text=raw.raw)

    # ---- recovery and clean-up ----------------------------------------------------------------------

    def find_orphaned_batch(
        self, idempotency_key: str, input_fingerprint: str, not_before: str
    ) -> str | None:
        """The newest batch made from a file whose name carries this key and fingerprint and created
        since ``not_before`` (less the clock skew Together's clock may have), whatever its status; None
        when there is none. A failed lookup raises (common.ai then does not resubmit)."""
        name = resubmission.upload_name(_UPLOAD_STEM, idempotency_key, input_fingerprint)
        file_ids = resubmission.files_named(self.hook.list_files(), name)
        if not file_ids:
            return None
        cutoff = _parse_time(not_before)
        if cutoff is not None:
            cutoff -= resubmission.CLOCK_SKEW
        candidates = [
            batch
            for batch in self.hook.list_batches()
            if batch.input_file_id in file_ids
            and batch.created_at is not None
            and (cutoff is None or batch.created_at >= cutoff)
        ]
        if not candidates:
            return None
        newest = max(candidates, key=lambda batch: batch.created_at or datetime.min.replace(tzinfo=UTC))
        log.info(
            "Found Together batch %s created from file %s before the submit was recorded", newest.id, name
        )
        return newest.id

    def close(self) -> None:
        """Close the hook's keep-alive session if a call opened one."""
        session = self.hook.__dict__.pop("_session", None)
        if session is not None:
            session.close()


def _parse_time(text: str) -> datetime | None:
    if not text:
        return None
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _index(custom_id: str) -> int | None:
    _, _, tail = custom_id.rpartition("-")
    return int(tail) if tail.isdigit() else None


def _items(found: Iterator[dict[str, Any]], job: BatchJob) -> Iterator[RawResultItem]:
    unanswered = _UNANSWERED.get(job.status)
    for record in found:
        custom_id = record["custom_id"]
        index = _index(custom_id)
        if index is None:
            # Not one of ours: common.ai accounts the index it stood for as missing.
            log.warning(
                "Together batch %s answered custom_id %r, which names no request index", job.id, custom_id
            )
            continue
        if record["status"] == records.SUCCEEDED:
            yield _succeeded(custom_id, index, record)
        elif record["status"] == records.ERRORED:
            error = record["error"] or {}
            code = error.get("code")
            yield _item(
                custom_id,
                index,
                "errored",
                record,
                error={
                    "type": "provider_error",
                    "message": str(error.get("message") or "Together reported an error for this request"),
                    "provider_code": None if code is None else str(code),
                    "stage": "provider",
                },
            )
        elif unanswered is not None:
            message = f"Together batch {job.id} ended {job.raw_status} before answering this request"
            yield _item(
                custom_id,
                index,
                unanswered,
                record,
                error={"type": unanswered, "message": message, "provider_code": None, "stage": "provider"},
            )


def _item(
    custom_id: str, index: int, status: ItemStatus, record: dict[str, Any], *, error: dict[str, Any]
) -> RawResultItem:
    return RawResultItem(
        custom_id=custom_id,
        index=index,
        provider_status=status,
        model=record.get("model"),
        usage=None,
        finish_reason=None,
        error=error,
        raw=None,
    )


def _succeeded(custom_id: str, index: int, record: dict[str, Any]) -> RawResultItem:
    body: dict[str, Any] = record.get("response") or {}
    choices = body.get("choices")
    choice: dict[str, Any] = (
        choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    )
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    usage = record.get("usage")
    return RawResultItem(
        custom_id=custom_id,
        index=index,
        provider_status="success",
        model=record.get("model"),
        usage=None
        if usage is None
        else {"input_tokens": usage["prompt_tokens"], "output_tokens": usage["completion_tokens"]},
        finish_reason=choice.get("finish_reason"),
        error=None,
        raw=content if isinstance(content, str) else None,
    )
