"""Streaming validation of a batch input file, before anything is uploaded or paid for.

One pass, one block of lines in memory at a time: memory stays flat whatever the file size (the set
of custom_ids is bounded by the line limit). The same pass computes the SHA-256 the upload sends. Lines
go through msgspec when Airflow brought it (see :mod:`.jsonl_fast`), else, and whenever msgspec cannot
vouch for a line, through ``json``, which words every error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from together_provider.client.errors import InputFileError

_fast: ModuleType | None
try:
    from together_provider.client import jsonl_fast as _fast
except ImportError:  # no msgspec (Airflow 2 may lack it): every line takes the json path
    _fast = None

MAX_LINES = 50_000
MAX_FILE_BYTES = 100 * 1024 * 1024
MAX_LINE_BYTES = 10 * 1024 * 1024
MAX_CUSTOM_ID_CHARS = 64
_CHUNK = 1024 * 1024
# Blocks that stay in the CPU cache are read, hashed, UTF-8-checked and parsed fastest; much larger ones
# were markedly slower (benchmarks/README.md, "Figures behind code choices").
_BLOCK = 256 * 1024
# Together reads an audio request's input from a URL, not from the line: each line says so with
# "method": "FILE" and puts the URL in body.file.
AUDIO_ENDPOINTS = frozenset({"/v1/audio/transcriptions", "/v1/audio/translations"})


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
    if model is not None and not isinstance(model, str):
        # Named for what it is: "missing" would send the user looking for a field that is there.
        raise InputFileError(
            f"'body.model' must be a string naming the model ({_shown(body, 'model')})", path=path, line=line
        )
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


def is_audio_url(value: object) -> bool:
    """An http(s) URL with a host, as Together fetches an audio file from ``body.file``."""
    if not isinstance(value, str) or value != value.strip():
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _shown(record: dict[str, Any], key: str) -> str:
    if key not in record:
        return "it is missing"
    text = repr(record[key])
    return f"got {text if len(text) <= 60 else text[:57] + '...'}"


def _check_audio(record: dict[str, Any], body: dict[str, Any], line: int, path: str, endpoint: str) -> None:
    if record.get("method") != "FILE":
        raise InputFileError(
            f"'method' must be \"FILE\" for {endpoint} ({_shown(record, 'method')}); "
            'add "method": "FILE" to the line',
            path=path,
            line=line,
        )
    if not is_audio_url(body.get("file")):
        raise InputFileError(
            f"'body.file' must be the http(s) URL of the audio file for {endpoint} "
            f"({_shown(body, 'file')}); Together fetches the audio from there",
            path=path,
            line=line,
        )


def _int(digits: str) -> int:
    # int() refuses a number of more digits than sys.get_int_max_str_digits() (640 at the lowest) with a
    # ValueError that escaped as a crash, though the line is valid JSON (and msgspec takes it). No rule
    # reads a number, so a stand-in of the same type does.
    return 0 if len(digits) > 640 else int(digits)


def _check_line(raw: bytes, line: int, path: str, endpoint: str | None, seen: set[str]) -> str:
    """Every rule of one line, with json: the path that words every error. Returns the model."""
    if not raw.strip():
        raise InputFileError("line is empty; remove blank lines", path=path, line=line)
    try:
        record = json.loads(raw, parse_int=_int)
    except UnicodeDecodeError:
        raise InputFileError("line is not valid UTF-8", path=path, line=line) from None
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"line is not valid JSON ({exc.msg} at column {exc.colno})", path=path, line=line
        ) from None
    if not isinstance(record, dict):
        raise InputFileError(
            'line must be a JSON object like {"custom_id": "...", "body": {...}}', path=path, line=line
        )
    custom_id = record.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise InputFileError("'custom_id' is missing or not a non-empty string", path=path, line=line)
    if len(custom_id) > MAX_CUSTOM_ID_CHARS:
        raise InputFileError(
            f"'custom_id' is {len(custom_id)} characters, over the limit of {MAX_CUSTOM_ID_CHARS}",
            path=path,
            line=line,
        )
    if custom_id in seen:
        raise InputFileError(
            f"'custom_id' {custom_id!r} is used twice; each request needs a unique id", path=path, line=line
        )
    seen.add(custom_id)
    if "body" not in record:
        raise InputFileError("'body' is missing; put the request under 'body'", path=path, line=line)
    model = _check_body(record["body"], line, path, endpoint)
    if endpoint in AUDIO_ENDPOINTS:
        _check_audio(record, record["body"], line, path, endpoint)
    return model


def _blocks(handle: BinaryIO, digest: Any) -> Iterator[bytes]:
    """The file as blocks of whole lines, hashed as read. Whole lines, so a block's UTF-8 is checked in
    one call and no character is cut; a line still unfinished past the size limit comes alone, to fail
    that rule without being read to its end."""
    unfinished: list[bytes] = []  # in pieces: joining once keeps a line of megabytes linear to gather
    pending = 0
    while chunk := handle.read(_BLOCK):
        digest.update(chunk)
        end = chunk.rfind(b"\n") + 1
        if not end:
            unfinished.append(chunk)
            pending += len(chunk)
            if pending > MAX_LINE_BYTES:
                yield b"".join(unfinished)
                return
            continue
        yield b"".join([*unfinished, chunk[:end]]) if unfinished else chunk[:end]
        pending = len(chunk) - end
        unfinished = [chunk[end:]] if pending else []
    if pending:
        yield b"".join(unfinished)


def _check_name(name: str) -> None:
    if not name.endswith(".jsonl"):
        raise InputFileError(
            "a batch input file must be JSON Lines with a name ending in '.jsonl'", path=name
        )


def validate_input_file(path: str | os.PathLike[str], *, endpoint: str | None = None) -> InputFileSummary:
    """Check every Batch API rule on ``path``; raise :class:`InputFileError` naming the line and rule.

    :param endpoint: when given, also checks the request shape that endpoint needs (``messages`` for
        chat completions, ``"method": "FILE"`` and a ``body.file`` URL for audio).
        Without it only the rules common to every endpoint apply.
    """
    name = os.fspath(path)
    _check_name(name)
    try:
        size = os.path.getsize(name)
    except FileNotFoundError:
        raise InputFileError("file not found; check the path (it is read on the worker)", path=name) from None
    _check_size(size, name)
    with open(name, "rb") as handle:
        return _scan(handle, name, size, endpoint)[0]


def validate_input_stream(
    handle: BinaryIO, *, name: str, size: int, endpoint: str | None = None
) -> InputFileSummary:
    """:func:`validate_input_file` on an open binary stream (an object in a store, say) of ``size``
    bytes, read once from where it stands; ``name`` (a URL) is what errors and the summary show.

    The stream must hold exactly ``size`` bytes: the size comes from the store's listing, and a
    different count means the object changed while read, so its hash is of neither version.
    """
    _check_name(name)
    _check_size(size, name)
    summary, read = _scan(handle, name, size, endpoint)
    if read != size:
        raise InputFileError(
            f"read {read:,} bytes of an object announced as {size:,}: it changed while being read; "
            "run the task again once its writer has finished",
            path=name,
        )
    return summary


def _check_size(size: int, name: str) -> None:
    if size == 0:
        raise InputFileError("file is empty; a batch needs at least one request line", path=name)
    if size > MAX_FILE_BYTES:
        raise InputFileError(
            f"file is {size:,} bytes, over the Batch API limit of {MAX_FILE_BYTES:,} bytes (100 MB); "
            "split it into several batches",
            path=name,
        )


def _scan(handle: BinaryIO, name: str, size: int, endpoint: str | None) -> tuple[InputFileSummary, int]:
    """Every line rule in one pass over ``handle``; returns the summary and the bytes read."""
    digest = hashlib.sha256()
    seen: set[str] = set()
    models: set[str] = set()
    lines = 0
    read = 0
    passes = line_checker(endpoint)
    for block in _blocks(handle, digest):
        read += len(block)
        lines = check_block(block, lines, name, endpoint, seen, models, passes, max_lines=MAX_LINES)
    summary = InputFileSummary(
        path=name, lines=lines, bytes=size, sha256=digest.hexdigest(), models=frozenset(models)
    )
    return summary, read


def line_checker(endpoint: str | None) -> Any:
    """msgspec's quick pass for ``endpoint``, or None where msgspec is absent (see :func:`check_block`)."""
    if _fast is None:
        return None
    return _fast.checker(endpoint, audio=AUDIO_ENDPOINTS, audio_url=is_audio_url)


def check_block(
    block: bytes,
    lines: int,
    name: str,
    endpoint: str | None,
    seen: set[str],
    models: set[str],
    passes: Any,
    *,
    max_lines: int | None,
    ends: list[int] | None = None,
) -> int:
    """Every rule on each line of ``block`` (whole lines, as :func:`_blocks` gives them), the lines
    before it numbering ``lines``; returns the new count. ``seen`` and ``models`` grow with the ids
    and models met. ``max_lines=None`` lifts the per-file line limit (a file about to be split);
    ``ends``, when given, receives each line's end offset within the block."""
    quick = passes
    if quick is not None and not block.isascii():
        try:
            block.decode()
        except UnicodeDecodeError:
            # json accepts UTF-8-encoded surrogates, strict decoding does not: json decides.
            quick = None
    view = memoryview(block)
    start = 0
    while start < len(block):
        end = block.find(b"\n", start) + 1 or len(block)
        lines += 1
        if end - start > MAX_LINE_BYTES:
            raise InputFileError(
                f"line is over the {MAX_LINE_BYTES:,}-byte limit for one request",
                path=name,
                line=lines,
            )
        if max_lines is not None and lines > max_lines:
            raise InputFileError(
                f"more than {MAX_LINES:,} requests; the Batch API takes at most {MAX_LINES:,} "
                "per batch, split the file",
                path=name,
                line=lines,
            )
        found = quick(view[start:end]) if quick is not None else None
        if found is None or len(found[0]) > MAX_CUSTOM_ID_CHARS or found[0] in seen:
            models.add(_check_line(block[start:end], lines, name, endpoint, seen))
        else:
            seen.add(found[0])
            models.add(found[1])
        if ends is not None:
            ends.append(end)
        start = end
    return lines


def sha256_of(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as handle:
        return sha256_of_stream(handle)


def sha256_of_stream(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()
