"""Issue 22, point 4: one API call has a total deadline, which an answer dripped a byte at a time (each
read well within the read timeout) cannot stretch. Sync (a watchdog shutting down the call's socket) and
async (aiohttp's total timeout) alike."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from tests.security.hostile import BATCH, Seen, head
from together_provider.client.errors import APITimeoutError

EVERY = 0.25  # seconds between two bytes: far within the read timeout


class Dripper:
    """A handler sending ``head_bytes`` then ``body`` a byte every ``EVERY`` seconds (all of it, when
    ``drip_head``), counting what got out before the client hung up."""

    def __init__(self, *, drip_head: bool = False) -> None:
        self.body = BATCH[:40]  # a cut batch: had it all arrived, it would not even parse
        self.head = head(200, [("Content-Type", "application/json"), ("Content-Length", str(len(self.body)))])
        self.drip_head = drip_head
        self.sent = 0
        self.total = len(self.body) + (len(self.head) if drip_head else 0)
        self.lock = threading.Lock()

    def __call__(self, request: Seen, conn: socket.socket) -> None:
        if not self.drip_head:
            conn.sendall(self.head)
        data = (self.head if self.drip_head else b"") + self.body
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
            with self.lock:
                self.sent += 1
            time.sleep(EVERY)


def _call(side: str, hook, method: str = "get_batch", *args):
    if side == "sync":
        return getattr(hook, method)(*(args or ("b-1",)))

    async def run():
        try:
            return await getattr(hook, f"a{method}")(*(args or ("b-1",)))
        finally:
            await hook.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("side", ["sync", "async"])
@pytest.mark.parametrize("drip_head", [False, True], ids=["body", "status-line-and-headers"])
def test_a_dripped_answer_is_cut_at_the_calls_deadline(hostile, hook, side, drip_head):
    dripper = Dripper(drip_head=drip_head)
    hostile(dripper, total_timeout=1, timeout=2)
    with pytest.raises(APITimeoutError) as caught:
        _call(side, hook)
    with dripper.lock:
        sent = dripper.sent
    # The client hung up long before the server was done: a per-read timeout never would have.
    assert sent < dripper.total / 2, (sent, dripper.total)
    assert "deadline of 1 s" in str(caught.value)
    assert "total_timeout" in str(caught.value)


@pytest.mark.parametrize("side", ["sync", "async"])
def test_a_deadline_overrun_of_a_read_is_retried(hostile, hook, side):
    dripper = Dripper()
    server = hostile(dripper, total_timeout=1, max_retries=1)
    with pytest.raises(APITimeoutError):
        _call(side, hook)
    assert len(server.seen) == 2


def test_a_deadline_overrun_of_a_create_is_not_retried(hostile, hook):
    # The create reached Together: asking again could make a second batch.
    dripper = Dripper()
    server = hostile(dripper, total_timeout=1, max_retries=3)
    with pytest.raises(APITimeoutError) as caught:
        hook.create_batch("file-1")
    assert caught.value.request_sent
    assert [seen.method for seen in server.seen] == ["POST"]


@pytest.mark.parametrize("side", ["sync", "async"])
def test_an_answer_within_the_deadline_is_read_and_the_connection_kept(hostile, hook, side):
    def quick(request: Seen, conn: socket.socket) -> None:
        conn.sendall(head(200, [("Content-Length", str(len(BATCH)))]) + BATCH)

    hostile(quick, total_timeout=1)
    assert _call(side, hook).id == "b-1"


@pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl command for a test certificate"
)
def test_the_sync_deadline_holds_over_tls(tmp_path, monkeypatch, hook):
    # The watchdog shuts the plain socket under the TLS one: the read must end there too.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    dripper = Dripper()
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener, context.wrap_socket(listener.accept()[0], server_side=True) as conn:
            conn.recv(65536)
            with contextlib.suppress(OSError):
                dripper(None, conn)  # type: ignore[arg-type]

    threading.Thread(target=serve, daemon=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    host = f"https://127.0.0.1:{listener.getsockname()[1]}"
    extra = {"max_retries": 0, "total_timeout": 1, "timeout": 2}
    conn = {"conn_type": "together", "host": host, "password": "sk-tls-test-0123456789", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", json.dumps(conn))
    with pytest.raises(APITimeoutError, match="deadline"):
        hook.get_batch("b-1")
    with dripper.lock:
        assert dripper.sent < dripper.total / 2
