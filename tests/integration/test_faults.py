"""Every fault the emulator can inject, against every call: ridden out with the right number of attempts,
or turned into a clear error. One row per fault x call."""

from __future__ import annotations

import asyncio
import time

import pytest

from together_provider.client.errors import (
    APIConnectionError,
    APITimeoutError,
    IncompleteDownloadError,
    InvalidResponseError,
    RateLimitError,
    ServerError,
)
from together_provider.hooks.together import TogetherHook
from together_provider.triggers.batch import BatchStatusTrigger

from ..conftest import connection_uri_env
from ..helpers import write_requests

FAULTS = {
    "429 with Retry-After": {"kind": "status", "status": 429, "retry_after": "0.3"},
    "429 without Retry-After": {"kind": "status", "status": 429},
    "500": {"kind": "status", "status": 500},
    "502": {"kind": "status", "status": 502},
    "503": {"kind": "status", "status": 503},
    "504": {"kind": "status", "status": 504},
    "dropped connection": {"kind": "drop"},
    "read timeout": {"kind": "slow", "delay": 2.5},
    "non-JSON body": {"kind": "malformed"},
    "HTML error page": {"kind": "html"},
}
# What a create does instead of retrying: the request reached Together, which may have made a batch.
CREATE_FAILS = {
    "500": ServerError,
    "502": ServerError,
    "503": ServerError,
    "504": ServerError,
    "dropped connection": APIConnectionError,
    "read timeout": APITimeoutError,
    "non-JSON body": InvalidResponseError,
    "HTML error page": ServerError,
}


@pytest.fixture
def setup(together_conn, emu, tmp_path, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=3, timeout=1.0)
    )
    hook = TogetherHook()
    file_id = hook.upload_file(write_requests(tmp_path / "f.jsonl", n=1, model="faults/model")).id
    running = hook.upload_file(write_requests(tmp_path / "r.jsonl", n=1, model="emulator/never-finish")).id
    batch_id = hook.create_batch(running).id
    done = emu.create_synthetic_file(50_000)
    return {
        "hook": hook,
        "emu": emu,
        "file_id": file_id,
        "batch_id": batch_id,
        "finishing_batch_id": hook.create_batch(file_id).id,
        "done": done["id"],
        "tmp": tmp_path,
    }


def call(name, ctx):
    """Make the call; return (method, path the fault targets, callable)."""
    hook, batch_id = ctx["hook"], ctx["batch_id"]
    table = {
        "get": ("GET", f"/v1/batches/{batch_id}", lambda: hook.get_batch(batch_id)),
        "list": ("GET", "/v1/batches", hook.list_batches),
        "create": ("POST", "/v1/batches", lambda: hook.create_batch(ctx["file_id"])),
        "cancel": ("POST", f"/v1/batches/{batch_id}/cancel", lambda: hook.cancel_batch(batch_id)),
        "upload": (
            "POST",
            "/v1/files",
            lambda: hook.upload_file(write_requests(ctx["tmp"] / "up.jsonl", n=2, model=f"u/{time.time()}")),
        ),
        "download": (
            "GET",
            f"/v1/files/{ctx['done']}/content",
            lambda: hook.download_file(ctx["done"], ctx["tmp"] / "out.jsonl"),
        ),
    }
    return table[name]


CALLS = ["get", "list", "create", "cancel", "upload", "download"]
ROWS = [
    (c, f)
    for c in CALLS
    for f in FAULTS
    # A 200 whose body is cut short is indistinguishable from content for a raw download; the
    # download's own fault is the truncated stream below.
    if not (c == "download" and f == "non-JSON body")
]


@pytest.mark.parametrize(("call_name", "fault"), ROWS, ids=[f"{c}-{f}" for c, f in ROWS])
def test_fault_table(setup, call_name, fault):
    emu = setup["emu"]
    method, path, make = call(call_name, setup)
    emu.clear_requests_log()
    emu.set_faults({"method": method, "path": f"^{path}$", "times": 1, **FAULTS[fault]})
    attempts = lambda: len(emu.requests_log(method=method, path=path))  # noqa: E731
    if call_name == "create" and fault in CREATE_FAILS:
        with pytest.raises(CREATE_FAILS[fault]):
            make()
        assert attempts() == 1, "a create that may have reached Together must not be repeated"
        return
    started = time.monotonic()
    make()
    assert attempts() == 2
    if fault == "429 with Retry-After":
        assert time.monotonic() - started >= 0.3


def test_truncated_download_retried_then_clean(setup):
    emu, hook = setup["emu"], setup["hook"]
    path = f"/v1/files/{setup['done']}/content"
    emu.set_faults(
        {"method": "GET", "path": f"^{path}$", "kind": "truncate", "truncate_at": 1000, "times": 1}
    )
    target = setup["tmp"] / "dl" / "out.jsonl"
    hook.download_file(setup["done"], target)
    assert target.stat().st_size == 50_000 and len(emu.requests_log(path=path)) == 2
    assert [p.name for p in target.parent.iterdir()] == ["out.jsonl"]


def test_download_cut_every_time_leaves_nothing(setup):
    emu, hook = setup["emu"], setup["hook"]
    path = f"/v1/files/{setup['done']}/content"
    emu.set_faults({"path": f"^{path}$", "kind": "truncate", "truncate_at": 20_000, "times": None})
    target = setup["tmp"] / "dl2" / "out.jsonl"
    with pytest.raises(IncompleteDownloadError):
        hook.download_file(setup["done"], target)
    assert list(target.parent.iterdir()) == []


def test_rate_limit_on_create_is_retried_after_the_wait(setup):
    emu = setup["emu"]
    emu.set_faults(
        {"method": "POST", "path": "^/v1/batches$", "kind": "status", "status": 429, "retry_after": "0.2"}
    )
    before = len(setup["hook"].list_batches())
    setup["hook"].create_batch(setup["file_id"])
    assert len(setup["hook"].list_batches()) == before + 1


@pytest.mark.parametrize("fault", list(FAULTS), ids=list(FAULTS))
def test_trigger_polling_rides_out(setup, fault):
    emu, batch_id = setup["emu"], setup["finishing_batch_id"]
    path = f"/v1/batches/{batch_id}"
    emu.set_faults({"method": "GET", "path": f"^{path}$", "times": 2, **FAULTS[fault]})

    async def first_event():
        async for event in BatchStatusTrigger(batch_id=batch_id, poll_interval=0.1).run():
            return event.payload

    assert asyncio.run(first_event())["status"] == "COMPLETED"
    assert len(emu.requests_log(path=path)) >= 3


def test_rate_limit_exhausted_on_poll_is_a_clear_error(setup, monkeypatch):
    emu = setup["emu"]
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))
    emu.set_faults({"path": "^/v1/batches$", "kind": "status", "status": 429, "retry_after": "0"})
    with pytest.raises(RateLimitError, match="429"):
        TogetherHook().list_batches()
