"""What the emulator's tests share: the key, request builders, and waits on the emulator's clock."""

from __future__ import annotations

import json
import time

API_KEY = "test-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
CHAT = "/v1/chat/completions"
TERMINAL = {"COMPLETED", "FAILED", "EXPIRED", "CANCELLED"}
REQUIRED_JOB_FIELDS = {
    "id",
    "user_id",
    "input_file_id",
    "file_size_bytes",
    "status",
    "job_deadline",
    "created_at",
    "endpoint",
    "progress",
}


def chat_line(custom_id: str, text: str = "hello", model: str = "meta/llama") -> dict:
    return {"custom_id": custom_id, "body": {"model": model, "messages": [{"role": "user", "content": text}]}}


def jsonl(lines: list) -> bytes:
    return b"".join(
        (json.dumps(line) if not isinstance(line, str) else line).encode() + b"\n" for line in lines
    )


def upload(emu, http, content: bytes, name: str = "input.jsonl", purpose: str = "batch-api") -> dict:
    response = http.post(
        f"{emu.url}/v1/files/upload",
        data={"purpose": purpose, "file_name": name},
        files={"file": (name, content)},
    )
    assert response.status_code == 200, response.text
    return response.json()


def create(emu, http, file_id: str, **extra) -> dict:
    response = http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_id, **extra})
    assert response.status_code == 201, response.text
    return response.json()["job"]


def submit(emu, http, lines: list) -> dict:
    return create(emu, http, upload(emu, http, jsonl(lines))["id"])


def get_batch(emu, http, batch_id: str) -> dict:
    response = http.get(f"{emu.url}/v1/batches/{batch_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(emu, http, batch_id: str, statuses=TERMINAL, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = get_batch(emu, http, batch_id)
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"batch stuck in {job['status']}"
        time.sleep(0.02)


def finish(emu, http, batch_id: str) -> dict:
    """Skip the clock ahead instead of sleeping through the lifecycle."""
    emu.advance_clock(60)
    return get_batch(emu, http, batch_id)


def content_lines(emu, http, file_id: str) -> list[dict]:
    response = http.get(f"{emu.url}/v1/files/{file_id}/content")
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    return [json.loads(line) for line in response.content.splitlines()]


def assert_error_data(body: dict) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert isinstance(body["error"]["message"], str) and isinstance(body["error"]["type"], str)


def assert_batch_error(body: dict) -> None:
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
