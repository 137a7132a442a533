"""common.ai's batch requests as Together input lines, one at a time, and the checks on their size."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from together_provider._compat import BatchRequest, LLMBatchLimitExceededError, OutputSpec
from together_provider.client.jsonl import MAX_FILE_BYTES, MAX_LINE_BYTES, MAX_LINES

ENDPOINT = "/v1/chat/completions"
# The remedy every limit error ends with: common.ai maps one task instance to one batch.
EXPAND = "Split the input across mapped task instances with .expand() so each one submits fewer requests."

ModelResolver = Callable[..., str]


def output_directive(spec: OutputSpec) -> dict[str, Any]:
    """Together's structured output: ``response_format`` of type ``json_schema`` (the OpenAI shape).

    ``strict`` is left out (Together's default, false): strict mode accepts only a subset of JSON
    Schema, and a reply that misses the schema lands as an ``invalid_output`` row either way.
    """
    if not spec.is_structured:
        return {}
    return {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": spec.schema_name, "schema": spec.json_schema},
        }
    }


def request_lines(
    requests: list[BatchRequest],
    *,
    model: str,
    idempotency_key: str,
    directive: dict[str, Any],
    resolve_model: ModelResolver,
    system_prompt: str = "",
    max_tokens: int = 1024,
    request_params: dict[str, Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """One ``{"custom_id", "body"}`` line per request. ``custom_id`` is ``<key>-<index>``: common.ai
    reads the index back from it, and Together allows the characters and the length."""
    for index, request in enumerate(requests):
        messages = []
        effective_system_prompt = request.get("system_prompt") or system_prompt
        if effective_system_prompt:
            messages.append({"role": "system", "content": effective_system_prompt})
        messages.append({"role": "user", "content": request["prompt"]})
        # The caller's parameters first, so none of them can replace the model, the prompt or the
        # structured-output directive this adapter manages.
        body = {
            **(request_params or {}),
            **(request.get("params") or {}),
            "model": resolve_model(request.get("model"), default_bare_model=model, request_index=index),
            "messages": messages,
            "max_tokens": request.get("max_tokens") or max_tokens,
            **directive,
        }
        yield {"custom_id": f"{idempotency_key}-{index}", "body": body}


def encoded(line: dict[str, Any]) -> bytes:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def check_limits(requests: list[BatchRequest], lines: Iterator[dict[str, Any]]) -> None:
    """Together's limits on one batch, before anything is uploaded: requests, bytes per line, bytes in
    all. ``lines`` is consumed one line at a time."""
    if len(requests) > MAX_LINES:
        raise LLMBatchLimitExceededError(
            f"Together's Batch API accepts at most {MAX_LINES:,} requests per batch; got "
            f"{len(requests):,}. {EXPAND}"
        )
    total = 0
    for index, line in enumerate(lines):
        size = len(encoded(line))
        if size > MAX_LINE_BYTES:
            raise LLMBatchLimitExceededError(
                f"Request {index} is {size:,} bytes as a Together input line, over the limit of "
                f"{MAX_LINE_BYTES:,} bytes per line (10 MB); shorten its prompt or its output_type schema."
            )
        total += size
        if total > MAX_FILE_BYTES:
            raise LLMBatchLimitExceededError(
                f"Together's Batch API accepts an input file of at most {MAX_FILE_BYTES:,} bytes (100 MB); "
                f"this input reached {total:,} bytes at request {index + 1} of {len(requests):,} (the "
                f"output_type schema is repeated in every request). {EXPAND}"
            )
