"""Checking batch input files and producing output/error lines, all streamed from and to disk.

These functions are synchronous on purpose: the state runs them in a worker thread so a large file never
blocks the event loop, and they hold one line in memory at a time (plus a small index per input line).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .records import InputPlan, LineRef

MODEL_BATCH_FAIL = "emulator/batch-fail"
MODEL_BATCH_EXPIRE = "emulator/batch-expire"
MODEL_NEVER_FINISH = "emulator/never-finish"
MODEL_REQUEST_ERROR = "emulator/request-error"
# Answered in neither file: Together does not promise every request comes back, so clients must notice.
MODEL_REQUEST_MISSING = "emulator/request-missing"
BATCH_LEVEL_MODELS = frozenset({MODEL_BATCH_FAIL, MODEL_BATCH_EXPIRE, MODEL_NEVER_FINISH})

MAX_REQUESTS = 50_000
MAX_CUSTOM_ID = 64
_WRITE_BUFFER = 1 << 20


def validate_input(path: Path, max_requests: int = MAX_REQUESTS) -> InputPlan:
    """Check every line like the real VALIDATING phase does and stop at the first bad one."""

    def failed(lineno: int, reason: str) -> InputPlan:
        return InputPlan(ok=False, error=f"Input file validation failed at line {lineno}: {reason}")

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


def scenario(plan: InputPlan) -> str:
    models = {ref.model for ref in plan.lines}
    if MODEL_BATCH_FAIL in models:
        return "fail"
    if MODEL_BATCH_EXPIRE in models:
        return "expire"
    if MODEL_NEVER_FINISH in models:
        return "never"
    return "complete"


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
) -> tuple[int, int]:
    """Answer ``refs`` into an output and an error file; returns (successes, errors). Requests for
    ``MODEL_REQUEST_MISSING`` are written to neither."""
    successes = errors = 0
    with open(input_path, "rb") as src, open(output_path, "wb") as out, open(error_path, "wb") as err:
        for ref in output_order(refs):
            if ref.model == MODEL_REQUEST_MISSING:
                continue
            src.seek(ref.offset)
            obj = json.loads(src.read(ref.length))
            key = _digest(batch_id, ref.custom_id)
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
