"""Checking batch input files and producing output/error lines, all streamed from and to disk.

These functions are synchronous on purpose: the state runs them in a worker thread so a large file never
blocks the event loop, and they hold one line in memory at a time (plus a small index per input line).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from .records import InputPlan, LineRef

MODEL_BATCH_FAIL = "emulator/batch-fail"
MODEL_BATCH_EXPIRE = "emulator/batch-expire"
MODEL_NEVER_FINISH = "emulator/never-finish"
MODEL_REQUEST_ERROR = "emulator/request-error"
# Answered in neither file: Together does not promise every request comes back, so clients must notice.
MODEL_REQUEST_MISSING = "emulator/request-missing"
# Errors a retry fixes: the request's first answer (its first N with "-N": "emulator/request-flaky-3") is a
# 503 "overloaded" line in the error file; later batches answer it. Counted per custom id until a reset.
MODEL_REQUEST_FLAKY = "emulator/request-flaky"
# The first batch holding such a line expires (half its requests answered, the rest missing); a later
# batch holding the same custom id completes, answering it like any request.
MODEL_BATCH_EXPIRE_ONCE = "emulator/batch-expire-once"
BATCH_LEVEL_MODELS = frozenset({MODEL_BATCH_FAIL, MODEL_BATCH_EXPIRE, MODEL_NEVER_FINISH})

MAX_REQUESTS = 50_000
MAX_BYTES = 100 * 1024 * 1024
MAX_CUSTOM_ID = 64
_WRITE_BUFFER = 1 << 20


def validate_input(path: Path, max_requests: int = MAX_REQUESTS, max_bytes: int = MAX_BYTES) -> InputPlan:
    """Check every line like the real VALIDATING phase does and stop at the first bad one."""

    def failed(lineno: int, reason: str) -> InputPlan:
        return InputPlan(ok=False, error=f"Input file validation failed at line {lineno}: {reason}")

    size = path.stat().st_size
    if size > max_bytes:
        return InputPlan(
            ok=False,
            error=f"Input file validation failed: the file is {size} bytes, over the limit of {max_bytes} "
            "bytes per batch",
        )

    lines: list[LineRef] = []
    first_seen: dict[str, int] = {}
    offset = 0
    with open(path, "rb") as handle:
        for lineno, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            text = raw.strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except ValueError:
                return failed(lineno, "not valid JSON")
            if not isinstance(obj, dict):
                return failed(lineno, "not a JSON object")
            custom_id = obj.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                return failed(lineno, "custom_id is missing or not a non-empty string")
            if len(custom_id) > MAX_CUSTOM_ID:
                return failed(lineno, f"custom_id is longer than {MAX_CUSTOM_ID} characters")
            if custom_id in first_seen:
                return failed(lineno, f"custom_id {custom_id!r} duplicates line {first_seen[custom_id]}")
            body = obj.get("body")
            if not isinstance(body, dict):
                return failed(lineno, "body is missing or not a JSON object")
            model = body.get("model")
            if not isinstance(model, str) or not model:
                return failed(lineno, "body.model is missing")
            first_seen[custom_id] = lineno
            lines.append(LineRef(start, len(raw), custom_id, model))
            if len(lines) > max_requests:
                return failed(lineno, f"more than {max_requests} requests in one batch")
    if not lines:
        return InputPlan(ok=False, error="Input file validation failed: the file contains no requests")
    return InputPlan(ok=True, lines=lines)


def scenario(plan: InputPlan, expired_once: set[str] | frozenset[str] = frozenset()) -> str:
    """How the batch ends; ``expired_once`` holds the custom ids whose "expire once" was already spent."""
    models = {ref.model for ref in plan.lines}
    if MODEL_BATCH_FAIL in models:
        return "fail"
    if MODEL_BATCH_EXPIRE in models:
        return "expire"
    if MODEL_NEVER_FINISH in models:
        return "never"
    if any(ref.model == MODEL_BATCH_EXPIRE_ONCE and ref.custom_id not in expired_once for ref in plan.lines):
        return "expire"
    return "complete"


def expire_once_ids(plan: InputPlan) -> set[str]:
    return {ref.custom_id for ref in plan.lines if ref.model == MODEL_BATCH_EXPIRE_ONCE}


def flaky_failures(model: object) -> int:
    """How many answers of a flaky request fail: 1 for ``emulator/request-flaky``, N for ``...-N``."""
    if not isinstance(model, str) or not model.startswith(MODEL_REQUEST_FLAKY):
        return 0
    suffix = model[len(MODEL_REQUEST_FLAKY) :]
    return int(suffix[1:]) if suffix.startswith("-") and suffix[1:].isdigit() else 1


def workable(lines: list[LineRef]) -> list[LineRef]:
    return [ref for ref in lines if ref.model not in BATCH_LEVEL_MODELS]


def lines_before_failure(plan: InputPlan) -> list[LineRef]:
    for index, ref in enumerate(plan.lines):
        if ref.model == MODEL_BATCH_FAIL:
            return workable(plan.lines[:index])
    return workable(plan.lines)


def output_order(refs: list[LineRef]) -> list[LineRef]:
    """A deterministic order that is never the input order, so clients cannot rely on it."""
    ordered = sorted(refs, key=lambda ref: hashlib.sha256(ref.custom_id.encode()).digest())
    if len(ordered) > 1 and all(a is b for a, b in zip(ordered, refs, strict=True)):
        ordered.reverse()
    return ordered


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _usage(prompt_chars: int, answer: str) -> dict:
    prompt_tokens = max(1, prompt_chars // 4)
    completion_tokens = max(1, len(answer) // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


# Placeholders for the string formats structured-output schemas commonly carry (pydantic's among them).
_FORMAT_PLACEHOLDERS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00Z",
    "duration": "PT0S",
    "email": "user@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-0000-0000-000000000000",
}
# A recursive schema (a tree of nodes) ends here: optional branches take null, arrays stay empty.
_MAX_DEPTH = 8


def structured_reply(response_format: object) -> str | None:
    """The message content for a request asking for JSON, or None for plain text.

    ``{"type": "json_schema", "json_schema": {"schema": ...}}`` gets a deterministic document that
    validates against the schema (the first enum value or option, a typed placeholder per field,
    every property filled, arrays of one item); ``{"type": "json_object"}`` gets ``{}``.
    """
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return "{}"
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        return "{}"
    return json.dumps(_placeholder(schema, schema, 0))


def _resolve(ref: str, root: dict) -> dict:
    node: object = root
    for part in ref.removeprefix("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _placeholder(schema: dict, root: dict, depth: int) -> object:
    if isinstance(schema.get("$ref"), str):
        return _placeholder(_resolve(schema["$ref"], root), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("allOf"), list) and schema["allOf"]:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            if isinstance(part, dict):
                merged.update(_resolve(part["$ref"], root) if isinstance(part.get("$ref"), str) else part)
        return _placeholder(merged, root, depth + 1)
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or () if isinstance(o, dict)]
        if options:
            not_null = [o for o in options if o.get("type") != "null"]
            nulls = [o for o in options if o.get("type") == "null"]
            pick = nulls[0] if depth >= _MAX_DEPTH and nulls else (not_null or options)[0]
            return _placeholder(pick, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: _placeholder(sub if isinstance(sub, dict) else {}, root, depth + 1)
            for name, sub in properties.items()
        }
    if kind == "array":
        return _array(schema, root, depth)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    text = _FORMAT_PLACEHOLDERS.get(str(schema.get("format")), "string")
    min_length, max_length = schema.get("minLength"), schema.get("maxLength")
    if isinstance(min_length, int) and len(text) < min_length:
        text += "x" * (min_length - len(text))
    if isinstance(max_length, int):
        text = text[:max_length]
    return text


def _array(schema: dict, root: dict, depth: int) -> list:
    prefix = [p for p in schema.get("prefixItems") or () if isinstance(p, dict)]
    items = schema["items"] if isinstance(schema.get("items"), dict) else {}
    min_items = schema["minItems"] if isinstance(schema.get("minItems"), int) else 0
    count = max(min_items, len(prefix), 0 if depth >= _MAX_DEPTH else 1)
    if isinstance(schema.get("maxItems"), int):
        count = min(count, schema["maxItems"])
    return [_placeholder(prefix[i] if i < len(prefix) else items, root, depth + 1) for i in range(count)]


def _number(schema: dict, *, integer: bool) -> int | float:
    """Zero when the bounds allow it, else the lowest value inside them (a midpoint for numbers)."""

    def bound(inclusive: str, exclusive: str) -> tuple[float, bool] | None:
        for key, is_exclusive in ((exclusive, True), (inclusive, False)):
            value = schema.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value), is_exclusive
        return None

    low, high = bound("minimum", "exclusiveMinimum"), bound("maximum", "exclusiveMaximum")
    if integer:
        start = 0 if low is None else math.floor(low[0]) + 1 if low[1] else math.ceil(low[0])
        if high is not None:
            top = math.ceil(high[0]) - 1 if high[1] else math.floor(high[0])
            start = min(start, top) if low is None else start
        return start
    if low is not None and high is not None:
        return (low[0] + high[0]) / 2
    if low is not None:
        return low[0] + 1 if low[1] else low[0]
    if high is not None and (high[0] < 0 or (high[1] and high[0] == 0)):
        return high[0] - 1 if high[1] else high[0]
    return 0.0


def answer(endpoint: str, body: dict, key: str, created: int) -> tuple[bool, dict]:
    """One request's emulated outcome: (True, response body) or (False, {"message", "code"})."""
    model = body.get("model")
    if model == MODEL_REQUEST_ERROR:
        return False, {"message": "emulator: request failed on purpose", "code": 400}
    if endpoint == "/v1/chat/completions":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return False, {"message": "body.messages is required for /v1/chat/completions", "code": 400}
        user_texts = [
            _text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"
        ]
        last_user = user_texts[-1] if user_texts else ""
        reply = structured_reply(body.get("response_format"))
        if reply is None:
            reply = f"Emulated answer to: {last_user[:40]}"
        prompt_chars = sum(len(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))
        return True, {
            "id": f"emu-{key[:24]}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(prompt_chars, reply),
        }
    if endpoint == "/v1/completions":
        prompt = body.get("prompt")
        if not isinstance(prompt, str | list):
            return False, {"message": "body.prompt is required for /v1/completions", "code": 400}
        prompt_text = prompt if isinstance(prompt, str) else " ".join(map(str, prompt))
        reply = f"Emulated answer to: {prompt_text[:40]}"
        return True, {
            "id": f"emu-{key[:24]}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}],
            "usage": _usage(len(prompt_text), reply),
        }
    audio_file = body.get("file")
    if not isinstance(audio_file, str) or not audio_file:
        return False, {"message": f"body.file (an audio URL) is required for {endpoint}", "code": 400}
    verb = "translation" if endpoint.endswith("translations") else "transcription"
    return True, {"text": f"Emulated {verb} of {audio_file[:80]}"}


def write_results(
    batch_id: str,
    endpoint: str,
    created: int,
    input_path: Path,
    refs: list[LineRef],
    output_path: Path,
    error_path: Path,
    attempts: dict[str, int] | None = None,
) -> tuple[int, int]:
    """Answer ``refs`` into an output and an error file; returns (successes, errors). Requests for
    ``MODEL_REQUEST_MISSING`` are written to neither. ``attempts`` counts each flaky request's answers
    (across batches: the caller keeps it)."""
    attempts = {} if attempts is None else attempts
    successes = errors = 0
    with open(input_path, "rb") as src, open(output_path, "wb") as out, open(error_path, "wb") as err:
        for ref in output_order(refs):
            if ref.model == MODEL_REQUEST_MISSING:
                continue
            src.seek(ref.offset)
            obj = json.loads(src.read(ref.length))
            key = _digest(batch_id, ref.custom_id)
            failing = flaky_failures(ref.model)
            tried = attempts.get(ref.custom_id, 0)
            if failing:
                attempts[ref.custom_id] = tried + 1
            if tried < failing:
                ok, result = (
                    False,
                    {
                        "message": f"emulator: the model is overloaded, try again (answer {tried + 1} of "
                        f"{failing} failed on purpose)",
                        "code": 503,
                    },
                )
            else:
                ok, result = answer(endpoint, obj["body"], key, created)
            if ok:
                line = {
                    "custom_id": ref.custom_id,
                    "response": {"status_code": 200, "request_id": f"emu-req-{key[:24]}", "body": result},
                }
                out.write(json.dumps(line).encode() + b"\n")
                successes += 1
            else:
                err.write(json.dumps({"custom_id": ref.custom_id, "error": result}).encode() + b"\n")
                errors += 1
    return successes, errors


_SYNTHETIC_TEMPLATE = json.dumps(
    {
        "custom_id": "synthetic-@I@",
        "response": {
            "status_code": 200,
            "request_id": "emu-req-synthetic-@I@",
            "body": {
                "id": "emu-synthetic-@I@",
                "object": "chat.completion",
                "created": 0,
                "model": "emulator/synthetic",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "Synthetic answer @I@ @PAD@"},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": {"prompt_tokens": 8, "completion_tokens": 200, "total_tokens": 208},
            },
        },
    }
)
_SYNTHETIC_PAD = 700


def _synthetic_line(index: int, pad: int) -> bytes:
    return (_SYNTHETIC_TEMPLATE.replace("@I@", str(index)).replace("@PAD@", "x" * pad) + "\n").encode()


def synthetic_min_bytes() -> int:
    return len(_synthetic_line(0, 0))


def write_synthetic(path: Path, size: int) -> int:
    """Write exactly ``size`` bytes of valid output lines (the last one padded to fit); returns the count."""
    if size < synthetic_min_bytes():
        raise ValueError(f"bytes must be at least {synthetic_min_bytes()}")
    written = index = 0
    pending: list[bytes] = []
    pending_size = 0
    with open(path, "wb") as out:
        while written < size:
            remaining = size - written
            base = len(_synthetic_line(index, 0))
            pad = remaining - base if remaining < base + 2 * _SYNTHETIC_PAD + 2 else _SYNTHETIC_PAD
            line = _synthetic_line(index, pad)
            pending.append(line)
            pending_size += len(line)
            written += len(line)
            index += 1
            if pending_size >= _WRITE_BUFFER:
                out.write(b"".join(pending))
                pending, pending_size = [], 0
        out.write(b"".join(pending))
    return index
