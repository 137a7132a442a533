"""Issue 22, point 4: one API call has a total deadline, which an answer dripped a byte at a time (each
read well within the read timeout) cannot stretch. Sync (a watchdog shutting down the call's socket) and
async (aiohttp's total timeout) alike."""

from __future__ import annotations

import asyncio
import socket
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
