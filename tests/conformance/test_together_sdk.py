"""The official ``together`` SDK (3.x) against the emulator: upload, create, retrieve, list, cancel, wait,
download, and the SDK's typed errors.

SDK 3.x resource paths already start with ``/v1`` and its default base URL is ``https://api.together.ai``,
so the client gets the emulator's root URL; ``base_url=url + "/v1"`` would call ``/v1/v1/...``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

# Written against SDK 3.x (2.x wants a base URL ending in /v1). Airflow 2.11's UI stack caps rich below
# what SDK 3.x needs, so that matrix leg has SDK 2.x and skips these.
together = pytest.importorskip("together", minversion="3")
from together.lib.resources.files import FileAlreadyExistsError  # noqa: E402

API_KEY = "test-key"  # the conftest emulator's key
CHAT = "/v1/chat/completions"
TERMINAL = {"COMPLETED", "FAILED", "EXPIRED", "CANCELLED"}


@pytest.fixture
def client(emulator_server) -> together.Together:
    return together.Together(api_key=API_KEY, base_url=emulator_server.url, max_retries=0)


def write_input(
    tmp_path: Path, count: int = 5, name: str = "batch_input.jsonl", model: str = "meta/llama"
) -> Path:
    path = tmp_path / name
    lines = [
        {
            "custom_id": f"req-{i}",
            "body": {"model": model, "messages": [{"role": "user", "content": f"Question {i}"}]},
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def wait(client: together.Together, batch_id: str, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.retrieve(batch_id)
        if job.status in TERMINAL:
            return job
        assert time.monotonic() < deadline, f"batch stuck in {job.status}"
        time.sleep(0.05)


def test_upload_create_wait_and_download(emulator_server, client, tmp_path):
    path = write_input(tmp_path)
    uploaded = client.files.upload(file=path, purpose="batch-api")
    assert uploaded.id.startswith("file-")
    assert uploaded.bytes == path.stat().st_size
    assert uploaded.filename == path.name and uploaded.purpose == "batch-api"
    assert uploaded.file_type == "jsonl" and uploaded.processing_status == "COMPLETED"
    flow = [
        (entry["method"], entry["path"].replace(uploaded.id, "{id}"), entry["status"])
        for entry in emulator_server.requests_log()
    ]
    assert flow == [
        ("POST", "/v1/files", 302),
        ("PUT", "/_emulator/uploads/{id}", 200),
        ("POST", "/v1/files/{id}/preprocess", 200),
    ]

    created = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT)
    assert created.job is not None and created.job.status == "VALIDATING"
    assert created.warning is None
    assert client.batches.retrieve(created.job.id).input_file_id == uploaded.id
    assert created.job.id in {job.id for job in client.batches.list()}

    done = wait(client, created.job.id)
    assert done.status == "COMPLETED" and done.progress == 100.0
    assert done.output_file_id and done.error_file_id is None and done.completed_at is not None
    text = client.files.content(done.output_file_id).text()
    out = [json.loads(line) for line in text.splitlines()]
    assert sorted(line["custom_id"] for line in out) == [f"req-{i}" for i in range(5)]
    assert all(line["response"]["status_code"] == 200 for line in out)
    assert out[0]["response"]["body"]["choices"][0]["message"]["content"].startswith(
        "Emulated answer to: Question"
    )

    with client.files.with_streaming_response.content(done.output_file_id) as streamed:
        assert int(streamed.headers["Content-Length"]) == len(text.encode())
        assert [json.loads(line)["custom_id"] for line in streamed.iter_lines()] == [
            line["custom_id"] for line in out
        ]

    listed = client.files.list().data
    assert {uploaded.id, done.output_file_id} <= {f.id for f in listed}
    assert client.files.retrieve(done.output_file_id).purpose == "batch-generated"
    deleted = client.files.delete(uploaded.id)
    assert deleted.id == uploaded.id and deleted.deleted is True


def test_repeated_upload_is_answered_with_the_existing_file(emulator_server, client, tmp_path):
    path = write_input(tmp_path)
    first = client.files.upload(file=path, purpose="batch-api")
    again = client.files.upload(file=path, purpose="batch-api")
    assert again.id == first.id
    assert ("POST", "/v1/files", 409) in [
        (e["method"], e["path"], e["status"]) for e in emulator_server.requests_log()
    ]
    with pytest.raises(FileAlreadyExistsError) as caught:
        client.files.upload(file=path, purpose="batch-api", raise_if_already_exists=True)
    assert caught.value.file_id == first.id


def test_cancel_and_outcomes_through_the_sdk(emulator_server, client, tmp_path):
    hanging = client.files.upload(
        file=write_input(tmp_path, 4, "hang.jsonl", "emulator/never-finish"), purpose="batch-api"
    )
    job = client.batches.create(input_file_id=hanging.id, endpoint=CHAT).job
    cancelled = client.batches.cancel(job.id)
    assert cancelled.status == "CANCELLED"
    with pytest.raises(together.BadRequestError) as refused:
        client.batches.cancel(job.id)
    assert "cannot be cancelled" in refused.value.body["error"]

    failing = client.files.upload(
        file=write_input(tmp_path, 2, "fail.jsonl", "emulator/batch-fail"), purpose="batch-api"
    )
    failed = wait(client, client.batches.create(input_file_id=failing.id, endpoint=CHAT).job.id)
    assert failed.status == "FAILED" and failed.error == "emulator: batch failed on purpose"

    window = client.batches.create(input_file_id=failing.id, endpoint=CHAT, completion_window="72h")
    assert window.warning and "completion_window" in window.warning


def test_typed_errors(emulator_server, client, tmp_path):
    wrong = together.Together(api_key="wrong-key", base_url=emulator_server.url, max_retries=0)
    with pytest.raises(together.AuthenticationError) as batch_auth:
        wrong.batches.list()
    assert isinstance(batch_auth.value.body["error"], str)
    with pytest.raises(together.AuthenticationError) as file_auth:
        wrong.files.list()
    assert file_auth.value.body["error"]["code"] == "invalid_api_key"
    with pytest.raises(together.AuthenticationError):
        wrong.files.upload(file=write_input(tmp_path), purpose="batch-api")
    with pytest.raises(together.NotFoundError):
        client.batches.retrieve("6f1c1d4e-0000-4000-8000-000000000000")
    with pytest.raises(together.NotFoundError):
        client.files.retrieve("file-does-not-exist")
    with pytest.raises(together.BadRequestError) as bad:
        client.batches.create(input_file_id="file-does-not-exist", endpoint=CHAT)
    assert "file-does-not-exist" in bad.value.body["error"]
    with pytest.raises(together.BadRequestError):
        client.batches.create(input_file_id="file-x", endpoint="/v1/embeddings")  # type: ignore[arg-type]


def test_sdk_retries_honour_retry_after_ms(emulator_server, tmp_path, monkeypatch):
    retrying = together.Together(api_key=API_KEY, base_url=emulator_server.url, max_retries=2)
    emulator_server.set_faults(
        {"path": "^/v1/batches$", "kind": "status", "status": 429, "retry_after_ms": "20", "times": 2}
    )
    waits: list[float] = []
    real_wait = retrying._calculate_retry_timeout

    def recorded_wait(*args, **kwargs):
        waits.append(real_wait(*args, **kwargs))
        return waits[-1]

    monkeypatch.setattr(retrying, "_calculate_retry_timeout", recorded_wait)
    assert retrying.batches.list() == []
    assert waits == [0.02, 0.02], "the SDK waits as the 20 ms hint says, not its default backoff"
    assert [entry["status"] for entry in emulator_server.requests_log(path="/v1/batches")] == [429, 429, 200]
    emulator_server.set_faults(
        {"path": "^/v1/batches$", "kind": "status", "status": 503, "should_retry": False}
    )
    with pytest.raises(together.InternalServerError):
        retrying.batches.list()
    assert len(emulator_server.requests_log(path="/v1/batches")) == 4, (
        "x-should-retry: false stops the SDK retrying"
    )


async def test_async_client_upload_and_batch(emulator_server, tmp_path):
    async with together.AsyncTogether(api_key=API_KEY, base_url=emulator_server.url, max_retries=0) as client:
        uploaded = await client.files.upload(file=write_input(tmp_path, 3), purpose="batch-api")
        job = (await client.batches.create(input_file_id=uploaded.id, endpoint=CHAT)).job
        assert (await client.batches.retrieve(job.id)).status == "VALIDATING"
        emulator_server.advance_clock(60)
        done = await client.batches.retrieve(job.id)
        assert done.status == "COMPLETED"
        content = await client.files.content(done.output_file_id)
        assert len((await content.read()).splitlines()) == 3
