"""Issue 22, point 3: an API answer is bounded after decompression, whatever the server sends.

Each case drives the sync hook and the async client the triggers use. The memory cases run in a child
process, so that what they measure is the client's peak, not the test session's.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.security.hostile import BATCH, Seen, gzip_bomb, head, reply
from together_provider.client.errors import ResponseTooLargeError, ServerError

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def _padded_batch(size: int):
    """A handler streaming one valid batch of ``size`` bytes, a MiB at a time (the server holds no more)."""
    start, end = b'{"id": "b-1", "status": "COMPLETED", "pad": "', b'"}'

    def answer(request: Seen, conn: socket.socket) -> None:
        conn.sendall(head(200, [("Content-Type", "application/json"), ("Content-Length", str(size))]))
        conn.sendall(start)
        left = size - len(start) - len(end)
        while left > 0:
            step = min(left, MIB)
            conn.sendall(b" " * step)
            left -= step
        conn.sendall(end)

    return answer


def _gzipped(body: bytes, status: int = 200, content_type: str = "application/json"):
    def answer(request: Seen, conn: socket.socket) -> None:
        reply(conn, status, body, [("Content-Encoding", "gzip")], content_type=content_type)

    return answer


def _get_sync(hook):
    return hook.get_batch("b-1")


def _get_async(hook):
    async def run():
        try:
            return await hook.aget_batch("b-1")
        finally:
            await hook.aclose()

    return asyncio.run(run())


SIDES = [pytest.param(_get_sync, id="sync"), pytest.param(_get_async, id="async")]


@pytest.mark.parametrize("get", SIDES)
def test_a_50_mb_answer_is_refused_naming_the_cap_and_its_extra(hostile, hook, get):
    hostile(_padded_batch(50 * MIB))
    with pytest.raises(ResponseTooLargeError) as caught:
        get(hook)
    assert "16 MiB" in str(caught.value)
    assert "max_response_mb" in str(caught.value)


@pytest.mark.parametrize("get", SIDES)
def test_a_gzip_bomb_is_refused(hostile, hook, get):
    server = hostile(_gzipped(gzip_bomb(200 * MIB)))
    with pytest.raises(ResponseTooLargeError):
        get(hook)
    # Only what this client decodes was offered: no brotli or zstd it would decode without a bound.
    assert server.seen[0].header("accept-encoding") == "gzip, deflate"


@pytest.mark.parametrize("get", SIDES)
def test_the_cap_is_the_connection_extra(hostile, hook, get):
    hostile(_padded_batch(2 * MIB), max_response_mb=1)
    with pytest.raises(ResponseTooLargeError, match="1 MiB"):
        get(hook)


@pytest.mark.parametrize("get", SIDES)
def test_an_answer_under_a_raised_cap_is_read(hostile, hook, get):
    hostile(_padded_batch(20 * MIB), max_response_mb=32)
    batch = get(hook)
    assert batch.id == "b-1"
    assert batch.status.is_success


def _ten_thousand_batches() -> bytes:
    item = {
        "id": "0a1b2c3d-0000-0000-0000-000000000000",
        "user_id": "user_0123456789abcdef",
        "input_file_id": "file-0a1b2c3d-0000-0000-0000-000000000000",
        "file_size_bytes": 123456,
        "status": "COMPLETED",
        "job_deadline": "2026-11-26T10:00:00.000000Z",
        "created_at": "2026-11-25T10:00:00.000000Z",
        "endpoint": "/v1/chat/completions",
        "progress": 100.0,
        "model_id": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "output_file_id": "file-0a1b2c3d-0000-0000-0000-000000000001",
        "error_file_id": "file-0a1b2c3d-0000-0000-0000-000000000002",
        "error": "",
        "completed_at": "2026-11-25T10:30:00.123456+00:00",
        "description": "x" * 160,
    }
    body = json.dumps([{**item, "id": f"batch-{i:05d}"} for i in range(10_000)]).encode()
    assert 650 * 10_000 < len(body) < 16 * MIB
    return body


@pytest.mark.parametrize("encoded", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_list_of_ten_thousand_batches_fits_the_default_cap(hostile, hook, side, encoded):
    body = _ten_thousand_batches()
    if encoded:
        hostile(_gzipped(gzip.compress(body)))
    else:
        hostile(lambda request, conn: reply(conn, 200, body))
    if side == "sync":
        batches = hook.list_batches()
    else:

        async def run():
            try:
                return await hook.alist_batches()
            finally:
                await hook.aclose()

        batches = asyncio.run(run())
    assert len(batches) == 10_000
    assert batches[-1].id == "batch-09999"


@pytest.mark.parametrize("get", SIDES)
def test_an_error_page_past_the_cap_keeps_its_status(hostile, hook, get):
    # A proxy's 502 is still a 502 (retryable), however large its page: only its message is cut.
    page = b"<html><body>" + b"bad gateway " * (2 * MIB) + b"</body></html>"
    hostile(_gzipped(gzip.compress(page), status=502, content_type="text/html"), max_response_mb=1)
    with pytest.raises(ServerError) as caught:
        get(hook)
    assert caught.value.status_code == 502


@pytest.mark.parametrize("get", SIDES)
def test_a_body_that_does_not_decode_is_a_transient_invalid_answer(hostile, hook, get):
    from together_provider.client.errors import InvalidResponseError, is_transient

    hostile(_gzipped(gzip.compress(BATCH)[:10] + b"\xff" * 32))
    with pytest.raises(InvalidResponseError) as caught:
        get(hook)
    assert is_transient(caught.value)


# ---- memory, in a child process ---------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import asyncio, gc, json, os, resource, socket, sys
    from tests.security.hostile import HostileServer, head, reply, gzip_bomb, BATCH

    KIND, SIDE = sys.argv[1], sys.argv[2]
    MIB = 1024 * 1024
    bomb = gzip_bomb(200 * MIB)
    hostile = {"count": 0}

    def answer(request, conn):
        hostile["count"] += 1
        if hostile["count"] == 1:  # the warm-up call: imports, session, pool
            reply(conn, 200, BATCH)
        elif KIND == "bomb":
            reply(conn, 200, bomb, [("Content-Encoding", "gzip")])
        else:
            size = 50 * MIB
            conn.sendall(head(200, [("Content-Type", "application/json"), ("Content-Length", str(size))]))
            conn.sendall(b'{"id": "b-1", "status": "COMPLETED", "pad": "')
            left = size - 48
            while left > 0:
                step = min(left, MIB)
                conn.sendall(b" " * step)
                left -= step
            conn.sendall(b'"}')

    with HostileServer(answer) as server:
        conn = {"conn_type": "together", "host": server.url, "password": "sk-child-0123456789",
                "extra": {"max_retries": 0}}
        os.environ["AIRFLOW_CONN_TOGETHER_DEFAULT"] = json.dumps(conn)
        from together_provider.client.errors import ResponseTooLargeError
        from together_provider.hooks.together import TogetherHook

        hook = TogetherHook()

        async def twice():
            try:
                await hook.aget_batch("b-1")
                gc.collect()
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                try:
                    await hook.aget_batch("b-1")
                except ResponseTooLargeError as exc:
                    outcome = type(exc).__name__
                else:
                    outcome = "read"
                return before, outcome
            finally:
                await hook.aclose()

        if SIDE == "sync":
            hook.get_batch("b-1")
            gc.collect()
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            try:
                hook.get_batch("b-1")
            except ResponseTooLargeError as exc:
                outcome = type(exc).__name__
            else:
                outcome = "read"
        else:
            before, outcome = asyncio.run(twice())
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"growth_kib": after - before, "outcome": outcome}))
    """
)


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("kind", ["bomb", "large"])
def test_memory_stays_flat_whatever_the_server_sends(kind, side, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "provider"), str(ROOT)]),
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db",
    }
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, side],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcome"] == "ResponseTooLargeError"
    # ru_maxrss is in KiB on Linux. The server sends 50 MB (or 200 MB inflated); the cap is 16 MiB, and
    # at most about two copies of what was kept (the buffer and the bytes handed on) may be live at once.
    assert result["growth_kib"] < 64 * 1024, result
