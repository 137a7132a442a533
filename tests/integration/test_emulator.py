"""The emulator over real HTTP on 127.0.0.1: routes, lifecycle, outcomes on purpose, faults, control API."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from together_provider.testing import emulator as emulator_pkg
from together_provider.testing.emulator import EmulatorServer

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


@pytest.fixture(scope="module")
def emu():
    with EmulatorServer(api_key=API_KEY, validating_seconds=0.2, processing_seconds=0.5) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(emu):
    emu.reset()
    yield


@pytest.fixture
def http():
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


# Helpers


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


# Auth


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic test-key"}]
)
def test_auth_batch_routes_answer_string_error(emu, headers):
    for method, path in (
        ("GET", "/v1/batches"),
        ("GET", f"/v1/batches/{uuid.uuid4()}"),
        ("POST", "/v1/batches"),
    ):
        response = requests.request(method, emu.url + path, headers=headers, json={})
        assert response.status_code == 401
        assert_batch_error(response.json())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_auth_file_routes_answer_error_data(emu, headers):
    for method, path in (
        ("GET", "/v1/files"),
        ("GET", "/v1/files/file-x/content"),
        ("POST", "/v1/files/upload"),
    ):
        response = requests.request(method, emu.url + path, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert_error_data(body)
        assert body["error"]["code"] == "invalid_api_key"


def test_only_v1_prefix_is_served(emu, http):
    assert http.get(f"{emu.url}/batches").status_code == 404
    assert http.get(f"{emu.url}/v1/batches").status_code == 200


# Files


def test_one_shot_upload_returns_full_file_object(emu, http):
    content = jsonl([chat_line("a")])
    record = upload(emu, http, content)
    assert record["id"].startswith("file-")
    uuid.UUID(record["id"].removeprefix("file-"))
    assert record["object"] == "file"
    assert isinstance(record["created_at"], int)
    assert record["filename"] == "input.jsonl"
    assert record["bytes"] == len(content)
    assert record["purpose"] == "batch-api"
    assert record["FileType"] == "jsonl"
    assert record["Processed"] is True
    assert record["processing_status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("data", "send_file", "param"),
    [
        ({"purpose": "batch-api", "file_name": "input.txt"}, True, "file_name"),
        ({"purpose": "batch-api"}, True, "file_name"),
        ({"purpose": "nonsense", "file_name": "input.jsonl"}, True, "purpose"),
        ({"purpose": "batch-api", "file_name": "input.jsonl", "file_type": "xml"}, True, "file_type"),
        ({"purpose": "batch-api", "file_name": "input.jsonl"}, False, "file"),
    ],
)
def test_one_shot_upload_validation(emu, http, data, send_file, param):
    files = {"file": ("x", b'{"a": 1}\n')} if send_file else {"unused": ("", b"")}
    response = http.post(f"{emu.url}/v1/files/upload", data=data, files=files)
    assert response.status_code == 400
    assert_error_data(response.json())
    assert response.json()["error"]["param"] == param
    assert http.get(f"{emu.url}/v1/files").json() == {"data": []}


def test_sdk_style_upload_flow(emu, http):
    content = jsonl([chat_line("a"), chat_line("b")])
    checksum = hashlib.sha256(content).hexdigest()
    form = {"purpose": "batch-api", "file_name": "in.jsonl", "file_type": "jsonl", "checksum": checksum}
    first = http.post(
        f"{emu.url}/v1/files", files={k: (None, v) for k, v in form.items()}, allow_redirects=False
    )
    assert first.status_code == 302
    file_id = first.headers["X-Together-File-Id"]
    location = first.headers["Location"]
    assert location.startswith(f"{emu.url}/_emulator/uploads/{file_id}?token=")
    # Not visible and not preprocessable before the bytes arrive.
    assert http.get(f"{emu.url}/v1/files/{file_id}").status_code == 404
    assert http.post(f"{emu.url}/v1/files/{file_id}/preprocess").status_code == 400
    assert requests.put(location.split("?")[0] + "?token=wrong", data=content).status_code == 403
    put = requests.put(location, data=content)  # no auth header, like a presigned URL
    assert put.status_code == 200
    done = http.post(f"{emu.url}/v1/files/{file_id}/preprocess")
    assert done.status_code == 200
    assert done.json()["id"] == file_id and done.json()["bytes"] == len(content)
    assert done.json()["Processed"] is True and done.json()["processing_status"] == "COMPLETED"
    again = http.post(
        f"{emu.url}/v1/files", files={k: (None, v) for k, v in form.items()}, allow_redirects=False
    )
    assert again.status_code == 409
    assert again.json()["file_id"] == file_id
    assert http.get(f"{emu.url}/v1/files/{file_id}/content").content == content


def test_multipart_upload_flow(emu, http):
    parts = [b'{"custom_id": "a", "body": {"model": "m"}}\n', b'{"custom_id": "b", "body": {"model": "m"}}\n']
    init = http.post(
        f"{emu.url}/v1/files/multipart/initiate",
        json={
            "file_name": "big.jsonl",
            "file_size": sum(map(len, parts)),
            "num_parts": 2,
            "purpose": "batch-api",
            "file_type": "jsonl",
            "checksum": "0" * 64,
        },
    )
    assert init.status_code == 200, init.text
    info = init.json()
    completed = []
    for part, data in zip(info["parts"], parts, strict=True):
        put = requests.put(part["URL"], data=data, headers=part["Headers"])
        assert put.status_code == 200
        completed.append({"part_number": part["PartNumber"], "etag": put.headers["ETag"].strip('"')})
    done = http.post(
        f"{emu.url}/v1/files/multipart/complete",
        json={"upload_id": info["upload_id"], "file_id": info["file_id"], "parts": completed},
    )
    assert done.status_code == 200, done.text
    assert done.json()["bytes"] == sum(map(len, parts))
    assert http.get(f"{emu.url}/v1/files/{info['file_id']}/content").content == b"".join(parts)


def test_list_get_delete_and_content(emu, http):
    content = jsonl([chat_line("a")])
    first, second = upload(emu, http, content, "one.jsonl"), upload(emu, http, content, "two.csv")
    listed = http.get(f"{emu.url}/v1/files").json()
    assert set(listed) == {"data"}
    assert {f["id"] for f in listed["data"]} == {first["id"], second["id"]}
    assert http.get(f"{emu.url}/v1/files/{second['id']}").json()["FileType"] == "csv"

    response = http.get(f"{emu.url}/v1/files/{first['id']}/content", stream=True)
    assert response.headers["Content-Length"] == str(len(content))
    assert response.raw.read() == content
    ranged = http.get(f"{emu.url}/v1/files/{first['id']}/content", headers={"Range": "bytes=5-"})
    assert ranged.status_code == 206 and ranged.content == content[5:]

    deleted = http.delete(f"{emu.url}/v1/files/{first['id']}")
    assert deleted.json() == {"id": first["id"], "object": "file", "deleted": True}
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        missing = http.request(method, f"{emu.url}/v1/files/{first['id']}{suffix}")
        assert missing.status_code == 404
        assert_error_data(missing.json())
    assert [f["id"] for f in http.get(f"{emu.url}/v1/files").json()["data"]] == [second["id"]]


def test_files_live_on_disk_in_data_dir(tmp_path, http):
    content = jsonl([chat_line(f"id-{i}") for i in range(50)])
    with EmulatorServer(
        api_key=API_KEY, data_dir=tmp_path, validating_seconds=0, processing_seconds=0
    ) as server:
        record = upload(server, http, content)
        on_disk = tmp_path / "files" / record["id"]
        assert on_disk.read_bytes() == content
        assert server.file_path(record["id"]) == on_disk
        job = wait_for(server, http, create(server, http, record["id"])["id"])
        assert (tmp_path / "files" / job["output_file_id"]).stat().st_size > 0
        http.delete(f"{server.url}/v1/files/{record['id']}")
        assert not on_disk.exists()
    assert tmp_path.exists(), "a caller's data_dir is never removed"


def test_synthetic_file_for_download_benchmarks(emu, http):
    made = requests.post(f"{emu.url}/_emulator/files", json={"bytes": 200_000, "filename": "big.jsonl"})
    assert made.status_code == 201
    record = made.json()
    assert record["bytes"] == 200_000 and record["purpose"] == "batch-generated"
    lines = content_lines(emu, http, record["id"])
    assert all("custom_id" in line and line["response"]["status_code"] == 200 for line in lines)
    assert len({line["custom_id"] for line in lines}) == len(lines)
    assert requests.post(f"{emu.url}/_emulator/files", json={"bytes": 10}).status_code == 400
    assert emu.create_synthetic_file(5_000)["bytes"] == 5_000


# Batches: create and validation


def test_create_envelope_and_batch_job_shape(emu, http):
    file_record = upload(emu, http, jsonl([chat_line("a")]))
    response = http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_record["id"]})
    assert response.status_code == 201
    envelope = response.json()
    assert set(envelope) == {"job"}, "a warning only comes when there is something to warn about"
    job = envelope["job"]
    assert set(job) == REQUIRED_JOB_FIELDS
    uuid.UUID(job["id"])
    assert job["status"] == "VALIDATING" and job["progress"] == 0.0
    assert job["input_file_id"] == file_record["id"] and job["file_size_bytes"] == file_record["bytes"]
    created = dt.datetime.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    deadline = dt.datetime.strptime(job["job_deadline"], "%Y-%m-%dT%H:%M:%SZ")
    assert deadline - created == dt.timedelta(hours=24)


def test_create_warns_about_ignored_completion_window(emu, http):
    file_id = upload(emu, http, jsonl([chat_line("a")]))["id"]
    body = {"endpoint": CHAT, "input_file_id": file_id, "completion_window": "48h", "model_id": "meta/llama"}
    envelope = http.post(f"{emu.url}/v1/batches", json=body).json()
    assert "completion_window" in envelope["warning"]
    assert envelope["job"]["model_id"] == "meta/llama"
    same_window = http.post(f"{emu.url}/v1/batches", json={**body, "completion_window": "24h"}).json()
    assert "warning" not in same_window


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input_file_id": "file-x"}, "endpoint"),
        ({"endpoint": CHAT}, "input_file_id"),
        ({"endpoint": "/v1/embeddings", "input_file_id": "file-x"}, "/v1/audio/transcriptions"),
        ({"endpoint": CHAT, "input_file_id": "file-does-not-exist"}, "file-does-not-exist"),
        ({"endpoint": CHAT, "input_file_id": "file-x", "priority": "high"}, "priority"),
        ([], "JSON object"),
    ],
)
def test_create_validation(emu, http, body, needle):
    response = http.post(f"{emu.url}/v1/batches", json=body)
    assert response.status_code == 400
    assert_batch_error(response.json())
    assert needle in response.json()["error"]


def test_create_rejects_non_json_body(emu, http):
    response = http.post(f"{emu.url}/v1/batches", data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert_batch_error(response.json())


def test_list_and_get(emu, http):
    first = submit(emu, http, [chat_line("a")])
    second = submit(emu, http, [chat_line("b")])
    listed = http.get(f"{emu.url}/v1/batches").json()
    assert isinstance(listed, list)
    assert [job["id"] for job in listed] == [second["id"], first["id"]]
    missing = http.get(f"{emu.url}/v1/batches/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert_batch_error(missing.json())


# Lifecycle and outcomes


def test_lifecycle_on_the_clock_and_completed_output(emu, http):
    lines = [chat_line(f"req-{i}", f"question number {i} " + "x" * 60) for i in range(8)]
    # Long phases, moved through by the emulator's clock: each status is seen whatever the machine's pace.
    emu.set_clock(validating_seconds=1000, processing_seconds=1000)
    try:
        job = submit(emu, http, lines)
    finally:
        emu.set_clock(validating_seconds=0.2, processing_seconds=0.6)  # the session's (tests/conftest.py)
    assert get_batch(emu, http, job["id"])["status"] == "VALIDATING"
    emu.advance_clock(1500)
    running = get_batch(emu, http, job["id"])
    assert running["status"] == "IN_PROGRESS" and 0.0 < running["progress"] < 100.0
    emu.advance_clock(1000)
    done = get_batch(emu, http, job["id"])
    assert done["status"] == "COMPLETED" and done["progress"] == 100.0
    assert set(done) == REQUIRED_JOB_FIELDS | {"output_file_id", "completed_at"}, "absent fields are omitted"
    output_meta = http.get(f"{emu.url}/v1/files/{done['output_file_id']}").json()
    assert output_meta["purpose"] == "batch-generated"
    assert output_meta["filename"] == f"batch_{job['id']}_output.jsonl"
    out = content_lines(emu, http, done["output_file_id"])
    ids = [line["custom_id"] for line in out]
    assert sorted(ids) == sorted(line["custom_id"] for line in lines)
    assert ids != [line["custom_id"] for line in lines], "outputs must not come back in input order"
    first = next(line for line in out if line["custom_id"] == "req-3")
    response = first["response"]
    assert response["status_code"] == 200 and response["request_id"]
    body = response["body"]
    assert body["object"] == "chat.completion" and body["model"] == "meta/llama"
    assert (
        body["choices"][0]["message"]["content"]
        == "Emulated answer to: " + lines[3]["body"]["messages"][0]["content"][:40]
    )
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    # Deterministic: a second batch with the same input answers in the same order with the same text.
    again = finish(emu, http, submit(emu, http, lines)["id"])
    assert [line["custom_id"] for line in content_lines(emu, http, again["output_file_id"])] == ids


def test_two_line_output_is_never_in_input_order(emu, http):
    for pair in (["a", "b"], ["b", "a"]):
        done = finish(emu, http, submit(emu, http, [chat_line(i) for i in pair])["id"])
        assert [line["custom_id"] for line in content_lines(emu, http, done["output_file_id"])] != pair


def test_error_file_only_for_bad_lines(emu, http):
    lines = [
        chat_line("good-1"),
        chat_line("bad-model", model="emulator/request-error"),
        {"custom_id": "no-messages", "body": {"model": "m"}},
        chat_line("good-2"),
    ]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "COMPLETED"
    errors = content_lines(emu, http, done["error_file_id"])
    assert {line["custom_id"] for line in errors} == {"bad-model", "no-messages"}
    assert all(set(line["error"]) == {"message", "code"} for line in errors)
    assert {line["custom_id"] for line in content_lines(emu, http, done["output_file_id"])} == {
        "good-1",
        "good-2",
    }

    only_bad = finish(emu, http, submit(emu, http, [chat_line("x", model="emulator/request-error")])["id"])
    assert only_bad["status"] == "COMPLETED"
    assert "output_file_id" not in only_bad and "error_file_id" in only_bad


def test_request_missing_comes_back_in_neither_file(emu, http):
    lines = [
        chat_line("good"),
        chat_line("gone", model="emulator/request-missing"),
        chat_line("bad", model="emulator/request-error"),
    ]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "COMPLETED"
    out = content_lines(emu, http, done["output_file_id"])
    assert [line["custom_id"] for line in out] == ["good"]
    assert [line["custom_id"] for line in content_lines(emu, http, done["error_file_id"])] == ["bad"]
    usage = out[0]["response"]["body"]["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    only_gone = finish(emu, http, submit(emu, http, [chat_line("x", model="emulator/request-missing")])["id"])
    assert only_gone["status"] == "COMPLETED"
    assert "output_file_id" not in only_gone and "error_file_id" not in only_gone


def test_every_completion_answer_reports_usage(emu, http):
    file_id = upload(emu, http, jsonl([{"custom_id": "p", "body": {"model": "m", "prompt": "Once upon"}}]))[
        "id"
    ]
    done = finish(emu, http, create(emu, http, file_id, endpoint="/v1/completions")["id"])
    usage = content_lines(emu, http, done["output_file_id"])[0]["response"]["body"]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_completions_and_audio_endpoints(emu, http):
    file_id = upload(emu, http, jsonl([{"custom_id": "p", "body": {"model": "m", "prompt": "Once upon"}}]))[
        "id"
    ]
    done = finish(emu, http, create(emu, http, file_id, endpoint="/v1/completions")["id"])
    assert (
        content_lines(emu, http, done["output_file_id"])[0]["response"]["body"]["object"] == "text_completion"
    )
    audio = {
        "custom_id": "a",
        "method": "FILE",
        "body": {"model": "openai/whisper-large-v3", "file": "https://x/a.mp3"},
    }
    file_id = upload(emu, http, jsonl([audio]))["id"]
    done = finish(emu, http, create(emu, http, file_id, endpoint="/v1/audio/transcriptions")["id"])
    assert "text" in content_lines(emu, http, done["output_file_id"])[0]["response"]["body"]


def test_batch_fail_on_purpose_keeps_partial_output(emu, http):
    lines = [chat_line("a"), chat_line("b"), chat_line("boom", model="emulator/batch-fail"), chat_line("c")]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "FAILED"
    assert done["error"] == "emulator: batch failed on purpose"
    assert {line["custom_id"] for line in content_lines(emu, http, done["output_file_id"])} == {"a", "b"}
    first_line_fails = finish(
        emu, http, submit(emu, http, [chat_line("x", model="emulator/batch-fail")])["id"]
    )
    assert first_line_fails["status"] == "FAILED" and "output_file_id" not in first_line_fails


def test_batch_expire_on_purpose_keeps_partial_output(emu, http):
    lines = [chat_line(f"r{i}") for i in range(6)] + [chat_line("late", model="emulator/batch-expire")]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "EXPIRED" and "expired" in done["error"]
    assert len(content_lines(emu, http, done["output_file_id"])) == 3
    assert 0 < done["progress"] < 100


def test_never_finish_then_cancel_with_partial_output(emu, http):
    lines = [chat_line(f"r{i}") for i in range(10)] + [chat_line("hang", model="emulator/never-finish")]
    job = submit(emu, http, lines)
    emu.advance_clock(10_000)
    stuck = get_batch(emu, http, job["id"])
    assert stuck["status"] == "IN_PROGRESS" and stuck["progress"] < 100
    cancelled = http.post(f"{emu.url}/v1/batches/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    assert len(content_lines(emu, http, cancelled.json()["output_file_id"])) == 5
    assert get_batch(emu, http, job["id"])["status"] == "CANCELLED"
    again = http.post(f"{emu.url}/v1/batches/{job['id']}/cancel")
    assert again.status_code == 400
    assert_batch_error(again.json())
    assert "CANCELLED" in again.json()["error"]


def test_cancel_rules(emu, http):
    validating = submit(emu, http, [chat_line("a")])
    cancelled = http.post(f"{emu.url}/v1/batches/{validating['id']}/cancel").json()
    assert cancelled["status"] == "CANCELLED" and "output_file_id" not in cancelled
    emu.advance_clock(60)
    assert get_batch(emu, http, validating["id"])["status"] == "CANCELLED", "cancelled is final"

    completed = finish(emu, http, submit(emu, http, [chat_line("a")])["id"])
    refused = http.post(f"{emu.url}/v1/batches/{completed['id']}/cancel")
    assert refused.status_code == 400
    assert "VALIDATING or IN_PROGRESS" in refused.json()["error"]
    unknown = http.post(f"{emu.url}/v1/batches/{uuid.uuid4()}/cancel")
    assert unknown.status_code == 404
    assert_batch_error(unknown.json())


@pytest.mark.parametrize(
    ("lines", "bad_line", "reason"),
    [
        ([chat_line("a"), chat_line("b"), "{not json"], 3, "not valid JSON"),
        ([chat_line("a"), {"body": {"model": "m"}}], 2, "custom_id"),
        ([chat_line("a"), chat_line("a")], 2, "duplicates line 1"),
        ([{"custom_id": "a", "body": {"messages": []}}], 1, "body.model"),
        ([chat_line("x" * 65)], 1, "64"),
        (["[1, 2]"], 1, "JSON object"),
    ],
)
def test_malformed_input_fails_during_validation(emu, http, lines, bad_line, reason):
    job = submit(emu, http, lines)
    emu.advance_clock(0.3)  # past VALIDATING only: the failure must not wait for processing
    done = get_batch(emu, http, job["id"])
    assert done["status"] == "FAILED"
    assert f"line {bad_line}" in done["error"] and reason in done["error"]
    assert "output_file_id" not in done and "error_file_id" not in done


def test_force_status_through_control_route(emu, http):
    job = submit(emu, http, [chat_line("a"), chat_line("b")])
    forced = requests.post(
        f"{emu.url}/_emulator/batches/{job['id']}/status", json={"status": "EXPIRED", "error": "too slow"}
    )
    assert forced.status_code == 200
    assert forced.json()["status"] == "EXPIRED" and forced.json()["error"] == "too slow"
    assert get_batch(emu, http, job["id"])["status"] == "EXPIRED"

    early = submit(emu, http, [chat_line("a"), chat_line("b")])
    completed = emu.set_batch_status(early["id"], "COMPLETED")
    assert (
        completed["status"] == "COMPLETED" and len(content_lines(emu, http, completed["output_file_id"])) == 2
    )

    pinned = submit(emu, http, [chat_line("a")])
    emu.set_batch_status(pinned["id"], "IN_PROGRESS")
    emu.advance_clock(60)
    assert get_batch(emu, http, pinned["id"])["status"] == "IN_PROGRESS", "a forced status stays put"

    assert (
        requests.post(f"{emu.url}/_emulator/batches/{job['id']}/status", json={"status": "DONE"}).status_code
        == 400
    )
    assert (
        requests.post(f"{emu.url}/_emulator/batches/nope/status", json={"status": "FAILED"}).status_code
        == 404
    )


def test_input_deleted_before_validation_fails_batch(emu, http):
    file_id = upload(emu, http, jsonl([chat_line("a")]))["id"]
    job = create(emu, http, file_id)
    http.delete(f"{emu.url}/v1/files/{file_id}")
    done = finish(emu, http, job["id"])
    assert done["status"] == "FAILED" and file_id in done["error"]


# Faults


def test_status_fault_with_retry_after_times_and_log(emu, http):
    job = submit(emu, http, [chat_line("a")])
    emu.clear_requests_log()
    requests.post(
        f"{emu.url}/_emulator/faults",
        json={
            "rules": [
                {
                    "method": "GET",
                    "path": "^/v1/batches/[^/]+$",
                    "kind": "status",
                    "status": 429,
                    "retry_after": "1",
                    "times": 2,
                }
            ]
        },
    ).raise_for_status()
    url = f"{emu.url}/v1/batches/{job['id']}"
    for _ in range(2):
        limited = http.get(url)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert_batch_error(limited.json())
    assert http.get(url).status_code == 200
    log = requests.get(f"{emu.url}/_emulator/requests").json()
    assert [(entry["status"], entry["fault"]) for entry in log] == [
        (429, "status"),
        (429, "status"),
        (200, None),
    ]
    assert all(entry["method"] == "GET" and entry["path"] == f"/v1/batches/{job['id']}" for entry in log)
    assert requests.get(f"{emu.url}/_emulator/faults").json()["rules"][0]["remaining"] == 0


def test_status_fault_headers_and_file_family_body(emu, http):
    emu.set_faults(
        {
            "path": "^/v1/files$",
            "kind": "status",
            "status": 503,
            "retry_after_ms": 250,
            "should_retry": False,
            "retry_after_http_date": 2,
        }
    )
    response = http.get(f"{emu.url}/v1/files")
    assert response.status_code == 503
    assert response.headers["retry-after-ms"] == "250" and response.headers["x-should-retry"] == "false"
    assert response.headers["Retry-After"].endswith("GMT")
    assert_error_data(response.json())
    assert response.json()["error"]["type"] == "server_error"


def test_status_fault_with_custom_body(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "status", "status": 402, "body": "<h1>pay up</h1>"})
    response = http.get(f"{emu.url}/v1/batches")
    assert response.status_code == 402 and response.text == "<h1>pay up</h1>"


def test_drop_fault_closes_connection(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "drop"})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{emu.url}/v1/batches", headers=AUTH)
    assert requests.get(f"{emu.url}/v1/batches", headers=AUTH).status_code == 200
    assert emu.requests_log(path="/v1/batches")[0] | {"time": 0} == {
        "method": "GET",
        "path": "/v1/batches",
        "status": None,
        "time": 0,
        "fault": "drop",
    }


def test_slow_fault_triggers_read_timeout(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "slow", "delay": 1.0})
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{emu.url}/v1/batches", headers=AUTH, timeout=0.2)
    assert requests.get(f"{emu.url}/v1/batches", headers=AUTH, timeout=2).status_code == 200
    # The rule fired once: the second request was answered without the delay.
    assert [e["fault"] for e in emu.requests_log(path="/v1/batches")] == ["slow", None]


def test_malformed_fault_sends_broken_json(emu, http):
    job = submit(emu, http, [chat_line("a")])
    emu.set_faults(
        {"path": "^/v1/batches/", "kind": "malformed"},
        {"path": "^/v1/batches$", "kind": "malformed", "phase": "after"},
        append=False,
    )
    for url in (f"{emu.url}/v1/batches/{job['id']}", f"{emu.url}/v1/batches"):
        response = http.get(url)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()


def test_html_fault_looks_like_a_proxy(emu, http):
    emu.set_faults(
        {"kind": "html", "path": "^/v1/files$"}, {"kind": "html", "status": 504, "path": "^/v1/batches"}
    )
    first = http.get(f"{emu.url}/v1/files")
    assert first.status_code == 502 and first.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in first.text
    assert http.get(f"{emu.url}/v1/batches").status_code == 504


def test_truncate_fault_cuts_a_download_midway(emu, http):
    record = emu.create_synthetic_file(100_000)
    emu.set_faults({"path": "/content$", "kind": "truncate", "truncate_at": 1_000, "after": 1})
    url = f"{emu.url}/v1/files/{record['id']}/content"
    assert len(http.get(url).content) == 100_000, "after: 1 lets the first download through"
    response = http.get(url, stream=True)
    assert response.headers["Content-Length"] == "100000"
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(100):  # divides 1000: a short last read is dropped
            received.extend(chunk)
    assert len(received) == 1_000
    assert len(http.get(url).content) == 100_000, "the rule is spent"


def test_truncate_fault_on_json_answer(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "truncate"})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{emu.url}/v1/batches").content  # noqa: B018


def test_after_fails_the_second_call_and_phase_after_keeps_side_effects(emu, http):
    file_id = upload(emu, http, jsonl([chat_line("a")]))["id"]
    emu.set_faults(
        {
            "method": "POST",
            "path": "^/v1/batches$",
            "kind": "status",
            "status": 500,
            "after": 1,
            "phase": "after",
        }
    )
    assert (
        http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_id}).status_code
        == 201
    )
    lost = http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_id})
    assert lost.status_code == 500
    assert_batch_error(lost.json())
    assert len(http.get(f"{emu.url}/v1/batches").json()) == 2, "the failed answer still created a batch"


def test_random_faults_are_seeded(emu, http):
    def run() -> list[int]:
        emu.set_faults(rate=0.5, kinds=["status"], seed=7, statuses=[500, 503])
        return [http.get(f"{emu.url}/v1/batches").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert {500, 503, 200} <= set(first)
    emu.set_faults(rate=1.0, kinds=["html"])
    proxied = http.get(f"{emu.url}/v1/files")
    assert proxied.status_code >= 500 and proxied.headers["Content-Type"].startswith("text/html")
    assert requests.put(f"{emu.url}/_emulator/uploads/x?token=y").status_code == 403, "only /v1 by default"
    emu.clear_faults()
    assert http.get(f"{emu.url}/v1/files").status_code == 200


def test_fault_script_validation_and_delete(emu):
    for script in (
        {"rules": [{"kind": "explode"}]},
        {"rules": [{"kind": "status", "colour": 1}]},
        {"rules": [{"kind": "status", "path": "("}]},
        {"rate": 2},
        {"rules": "x"},
    ):
        assert requests.post(f"{emu.url}/_emulator/faults", json=script).status_code == 400
    requests.post(f"{emu.url}/_emulator/faults", json={"rules": [{"kind": "drop"}]}).raise_for_status()
    requests.post(f"{emu.url}/_emulator/faults", json={"rules": [{"kind": "html"}], "append": True})
    assert len(requests.get(f"{emu.url}/_emulator/faults").json()["rules"]) == 2
    assert requests.delete(f"{emu.url}/_emulator/faults").status_code == 200
    assert requests.get(f"{emu.url}/_emulator/faults").json() == {"rules": [], "random": None}


def test_latency_and_clock_control(emu, http):
    clock = requests.post(f"{emu.url}/_emulator/clock", json={"latency_ms": 150, "processing_seconds": 0})
    assert clock.json()["latency_ms"] == 150
    started = time.monotonic()
    http.get(f"{emu.url}/v1/batches")
    assert time.monotonic() - started >= 0.15
    assert requests.post(f"{emu.url}/_emulator/clock", json={"latency_ms": -1}).status_code == 400
    requests.post(f"{emu.url}/_emulator/reset").raise_for_status()
    assert requests.get(f"{emu.url}/_emulator/clock").json()["latency_ms"] == 0


def test_request_log_skips_control_routes_and_reset_clears_everything(emu, http):
    submit(emu, http, [chat_line("a")])
    requests.get(f"{emu.url}/_emulator/health")
    log = requests.get(f"{emu.url}/_emulator/requests").json()
    assert [(entry["method"], entry["path"]) for entry in log] == [
        ("POST", "/v1/files/upload"),
        ("POST", "/v1/batches"),
    ]
    assert all(isinstance(entry["time"], float) for entry in log)
    requests.post(f"{emu.url}/_emulator/reset").raise_for_status()
    assert requests.get(f"{emu.url}/_emulator/requests").json() == []
    assert http.get(f"{emu.url}/v1/batches").json() == []
    assert http.get(f"{emu.url}/v1/files").json() == {"data": []}


# The console script


def test_cli_prints_url_and_stops_on_sigterm(tmp_path):
    provider_root = Path(emulator_pkg.__file__).resolve().parents[3]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(provider_root), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "together_provider.testing.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--data-dir",
            str(tmp_path),
            "--validating-seconds",
            "0",
            "--processing-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("together-emulator listening on http://127.0.0.1:"), process.stderr.read()
        url = line.rsplit(" ", 1)[-1]
        assert requests.get(f"{url}/_emulator/health", timeout=5).json() == {"ok": True}
        assert requests.get(f"{url}/v1/batches", headers={"Authorization": "Bearer cli-key"}).json() == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
