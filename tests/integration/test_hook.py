"""TogetherHook over real HTTP against the emulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path

import pytest

from together_provider.client.errors import (
    APIConnectionError,
    AuthenticationError,
    IncompleteDownloadError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from together_provider.client.models import BatchStatus
from together_provider.hooks.together import TogetherHook

from ..conftest import TEST_KEY, connection_uri_env
from ..helpers import wait_terminal, write_requests


@pytest.fixture
def hook(together_conn):
    hook = TogetherHook(together_conn_id=together_conn)
    yield hook


def test_full_cycle_upload_create_wait_download(hook, emu, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", n=4)
    uploaded = hook.upload_file(src)
    assert uploaded.filename == "in.jsonl" and uploaded.bytes == src.stat().st_size
    assert uploaded.id in {f.id for f in hook.list_files()}
    assert hook.get_file(uploaded.id).id == uploaded.id

    batch = hook.create_batch(uploaded.id)
    assert batch.status in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS)
    assert batch.id in {b.id for b in hook.list_batches()}
    done = wait_terminal(hook, batch.id)
    assert done.status is BatchStatus.COMPLETED and done.output_file_id and done.error_file_id is None

    out = hook.download_file(done.output_file_id, tmp_path / "nested" / "out.jsonl")
    lines = [json.loads(x) for x in Path(out).read_text().splitlines()]
    assert sorted(x["custom_id"] for x in lines) == ["r0", "r1", "r2", "r3"]
    assert all(x["response"]["status_code"] == 200 for x in lines)
    assert not [p for p in (tmp_path / "nested").iterdir() if p.name.endswith(".part")]


def test_same_content_is_not_uploaded_twice(hook, emu, tmp_path):
    src = write_requests(tmp_path / "again.jsonl", n=2, model="dedupe/model")
    first = hook.upload_file(src)
    emu.clear_requests_log()
    second = hook.upload_file(src)
    assert second.id == first.id
    assert not [e for e in emu.requests_log(method="PUT")]


def test_request_errors_give_an_error_file(hook, emu, tmp_path):
    bad = {
        "custom_id": "bad",
        "body": {"model": "emulator/request-error", "messages": [{"role": "user", "content": "x"}]},
    }
    src = write_requests(tmp_path / "mixed.jsonl", n=2, extra_lines=[bad])
    done = wait_terminal(hook, hook.create_batch(hook.upload_file(src).id).id)
    assert done.status is BatchStatus.COMPLETED and done.output_file_id and done.error_file_id
    err_path = hook.download_file(done.error_file_id, tmp_path / "err.jsonl")
    errors = [json.loads(x) for x in Path(err_path).read_text().splitlines()]
    assert [e["custom_id"] for e in errors] == ["bad"] and errors[0]["error"]["message"]


def test_cancel_and_delete(hook, emu, tmp_path):
    src = write_requests(tmp_path / "slow.jsonl", n=1, model="emulator/never-finish")
    file_id = hook.upload_file(src).id
    batch = hook.create_batch(file_id)
    cancelled = hook.cancel_batch(batch.id)
    assert cancelled.status is BatchStatus.CANCELLED
    assert hook.cancel_batch(batch.id).status is BatchStatus.CANCELLED  # again: no error
    normal = hook.upload_file(write_requests(tmp_path / "quick.jsonl", n=1, model="quick/model")).id
    done = wait_terminal(hook, hook.create_batch(normal).id)
    # Together refuses (400) to cancel a finished batch; the hook leaves it as it is and says so.
    emu.clear_requests_log()
    assert hook.cancel_batch(done.id).status is BatchStatus.COMPLETED
    assert [r["status"] for r in emu.requests_log(method="POST")] == [400]
    assert hook.delete_file(file_id) is True
    with pytest.raises(NotFoundError):
        hook.get_file(file_id)


def test_create_warning_is_logged(hook, emu, tmp_path, caplog, capsys):
    file_id = hook.upload_file(write_requests(tmp_path / "w.jsonl", n=1, model="warn/model")).id
    with caplog.at_level(logging.WARNING):
        batch = hook.create_batch(file_id, completion_window="48h")
    # Airflow 3 routes hook logs through structlog to stdout; Airflow 2 through logging.
    logged = caplog.text + capsys.readouterr().out
    assert f"Together created batch {batch.id} with a warning: completion_window" in logged


def test_wrong_key_fails_at_once(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_BAD", connection_uri_env(emu.url, key="wrong-key"))
    with pytest.raises(AuthenticationError, match="401") as info:
        TogetherHook(together_conn_id="together_bad").list_batches()
    assert "wrong-key" not in str(info.value)
    assert len(emu.requests_log()) == 1


def test_unknown_batch_fails_at_once(hook, emu):
    with pytest.raises(NotFoundError, match="get batch does-not-exist"):
        hook.get_batch("does-not-exist")
    assert len(emu.requests_log()) == 1


def test_retry_after_is_honoured_and_counted(hook, emu):
    emu.set_faults(
        {
            "method": "GET",
            "path": "^/v1/batches$",
            "kind": "status",
            "status": 429,
            "retry_after": "1",
            "times": 2,
        }
    )
    started = time.monotonic()
    hook.list_batches()
    elapsed = time.monotonic() - started
    attempts = emu.requests_log(method="GET", path="/v1/batches")
    assert len(attempts) == 3
    assert elapsed >= 2.0


def test_rate_limit_exhausted_raises_with_retry_after(together_conn, emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=1))
    emu.set_faults({"path": "^/v1/batches$", "kind": "status", "status": 429, "retry_after": "0", "times": 5})
    with pytest.raises(RateLimitError) as info:
        TogetherHook().list_batches()
    assert info.value.retry_after == 0.0
    assert len(emu.requests_log(path="/v1/batches")) == 2


def test_server_errors_and_drops_ridden_out(hook, emu):
    emu.set_faults(
        {"path": "^/v1/batches$", "kind": "status", "status": 503, "times": 1},
        {"path": "^/v1/batches$", "kind": "drop", "times": 1, "after": 1},
        {"path": "^/v1/batches$", "kind": "html", "times": 1, "after": 2},
    )
    assert isinstance(hook.list_batches(), list)
    assert len(emu.requests_log(path="/v1/batches")) == 4


def test_create_not_retried_after_server_error(hook, emu, tmp_path):
    file_id = hook.upload_file(write_requests(tmp_path / "c.jsonl", n=1, model="once/model")).id
    before = len(hook.list_batches())
    emu.set_faults({"method": "POST", "path": "^/v1/batches$", "kind": "status", "status": 500, "times": 1})
    with pytest.raises(ServerError):
        hook.create_batch(file_id)
    assert len(emu.requests_log(method="POST", path="/v1/batches")) == 1
    assert len(hook.list_batches()) == before


def test_truncated_download_leaves_no_file(hook, emu, tmp_path):
    big = emu.create_synthetic_file(200_000)
    target = tmp_path / "out.jsonl"
    emu.set_faults({"path": f"^/v1/files/{big['id']}/content$", "kind": "truncate", "times": 10})
    with pytest.raises(IncompleteDownloadError):
        hook.download_file(big["id"], target)
    assert list(tmp_path.iterdir()) == []
    emu.clear_faults()
    assert (tmp_path / "out.jsonl").exists() is False
    hook.download_file(big["id"], target)
    assert target.stat().st_size == 200_000


def test_connection_refused_is_a_transport_error(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DOWN", connection_uri_env("http://127.0.0.1:9", max_retries=0))
    with pytest.raises(APIConnectionError):
        TogetherHook(together_conn_id="together_down").list_batches()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("https://api.together.xyz/v1", "https://api.together.xyz"),
        ("https://api.together.ai/v1/", "https://api.together.ai"),
        ("api.together.ai", "https://api.together.ai"),
        ("", "https://api.together.ai"),
    ],
)
def test_base_url_forms(monkeypatch, host, expected):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_X", connection_uri_env(host, key="k"))
    assert TogetherHook(together_conn_id="together_x").settings.base_url == expected


def test_key_from_environment_when_password_empty(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_ENV", json.dumps({"conn_type": "together", "host": emu.url}))
    monkeypatch.setenv("TOGETHER_API_KEY", TEST_KEY)
    assert isinstance(TogetherHook(together_conn_id="together_env").list_batches(), list)


def test_missing_key_names_both_places(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_NOKEY", json.dumps({"conn_type": "together", "host": "http://x"})
    )
    with pytest.raises(ValueError, match=r"password field .* TOGETHER_API_KEY"):
        _ = TogetherHook(together_conn_id="together_nokey").settings


def test_test_connection_reports_in_words(hook, emu, monkeypatch):
    ok, message = hook.test_connection()
    assert ok and "API key works" in message
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_BAD", connection_uri_env(emu.url, key="wrong"))
    ok, message = TogetherHook(together_conn_id="together_bad").test_connection()
    assert not ok and "401" in message and "wrong" not in message


def test_async_reads_share_the_policy(hook, emu, tmp_path):
    file_id = hook.upload_file(write_requests(tmp_path / "a.jsonl", n=1, model="async/model")).id
    batch_id = hook.create_batch(file_id).id
    emu.set_faults({"method": "GET", "path": "^/v1/batches/", "kind": "status", "status": 502, "times": 1})

    async def read():
        try:
            got = await hook.aget_batch(batch_id)
            listed = await hook.alist_batches()
            file = await hook.aget_file(file_id)
            with pytest.raises(NotFoundError):
                await hook.aget_batch("nope")
            return got, listed, file
        finally:
            await hook.aclose()

    got, listed, file = asyncio.run(read())
    assert got.id == batch_id and batch_id in {b.id for b in listed} and file.id == file_id
    assert len(emu.requests_log(method="GET", path=f"/v1/batches/{batch_id}")) == 2


def test_key_is_masked_for_logs(hook, emu):
    from airflow.providers.common.compat.sdk import redact

    hook.list_batches()
    assert TEST_KEY not in str(redact(f"Authorization: Bearer {TEST_KEY}"))
