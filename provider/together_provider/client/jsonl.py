"""Streaming validation of a batch input file, before anything is uploaded or paid for.

One pass, one line in memory at a time: memory stays flat whatever the file size (the set of
custom_ids is bounded by the line limit). The same pass computes the SHA-256 the upload sends.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

from together_provider.client.errors import InputFileError

MAX_LINES = 50_000
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_LINE_BYTES = 10 * 1024 * 1024
MAX_CUSTOM_ID_CHARS = 64
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class InputFileSummary:
    path: str
    lines: int
    bytes: int
    sha256: str
    models: frozenset[str] = field(default_factory=frozenset)


def _check_body(body: object, line: int, path: str, endpoint: str | None) -> str:
    if not isinstance(body, dict):
        raise InputFileError(
            f"'body' must be a JSON object holding the request (got {type(body).__name__})",
            path=path,
            line=line,
        )
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InputFileError(
            "'body.model' is missing or empty; name the model for this request", path=path, line=line
        )
    if endpoint == "/v1/chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InputFileError(
                "'body.messages' must be a non-empty list for /v1/chat/completions", path=path, line=line
            )
    elif endpoint == "/v1/completions" and not isinstance(body.get("prompt"), (str, list)):
        raise InputFileError("'body.prompt' is required for /v1/completions", path=path, line=line)
    return model


def validate_input_file(path: str | os.PathLike[str], *, endpoint: str | None = None) -> InputFileSummary:
    """Check every Batch API rule on ``path``; raise :class:`InputFileError` naming the line and rule.

    :param endpoint: when given, also checks the request shape that endpoint needs (``messages`` for
        chat completions). Without it only the rules common to every endpoint apply.
    """
    name = os.fspath(path)
    if not name.endswith(".jsonl"):
        raise InputFileError(
            "a batch input file must be JSON Lines with a name ending in '.jsonl'", path=name
        )
    try:
        size = os.path.getsize(name)
    except FileNotFoundError:
        raise InputFileError("file not found; check the path (it is read on the worker)", path=name) from None
    if size == 0:
        raise InputFileError("file is empty; a batch needs at least one request line", path=name)
    if size > MAX_FILE_BYTES:
        raise InputFileError(
            f"file is {size:,} bytes, over the Batch API limit of {MAX_FILE_BYTES:,} bytes (100 MB); "
            "split it into several batches",
            path=name,
        )

    digest = hashlib.sha256()
    seen: set[str] = set()
    models: set[str] = set()
    lines = 0
    with open(name, "rb") as handle:
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            digest.update(raw)
            lines += 1
            if len(raw) > MAX_LINE_BYTES:
                raise InputFileError(
                    f"line is over the {MAX_LINE_BYTES:,}-byte limit for one request", path=name, line=lines
                )
            if lines > MAX_LINES:
                raise InputFileError(
                    f"more than {MAX_LINES:,} requests; the Batch API takes at most {MAX_LINES:,} per batch, "
                    "split the file",
                    path=name,
                    line=lines,
                )
            if not raw.strip():
                raise InputFileError("line is empty; remove blank lines", path=name, line=lines)
            try:
                record = json.loads(raw)
            except UnicodeDecodeError:
                raise InputFileError("line is not valid UTF-8", path=name, line=lines) from None
            except json.JSONDecodeError as exc:
                raise InputFileError(
                    f"line is not valid JSON ({exc.msg} at column {exc.colno})", path=name, line=lines
                ) from None
            if not isinstance(record, dict):
                raise InputFileError(
                    'line must be a JSON object like {"custom_id": "...", "body": {...}}',
                    path=name,
                    line=lines,
                )
            custom_id = record.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                raise InputFileError(
                    "'custom_id' is missing or not a non-empty string", path=name, line=lines
                )
            if len(custom_id) > MAX_CUSTOM_ID_CHARS:
                raise InputFileError(
                    f"'custom_id' is {len(custom_id)} characters, over the limit of {MAX_CUSTOM_ID_CHARS}",
                    path=name,
                    line=lines,
                )
            if custom_id in seen:
                raise InputFileError(
                    f"'custom_id' {custom_id!r} is used twice; each request needs a unique id",
                    path=name,
                    line=lines,
                )
            seen.add(custom_id)
            if "body" not in record:
                raise InputFileError("'body' is missing; put the request under 'body'", path=name, line=lines)
            models.add(_check_body(record["body"], lines, name, endpoint))
    return InputFileSummary(
        path=name, lines=lines, bytes=size, sha256=digest.hexdigest(), models=frozenset(models)
    )


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
