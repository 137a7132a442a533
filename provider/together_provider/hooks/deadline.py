"""A total deadline for one sync API call, which requests does not have.

requests' timeouts are per read: a server that sends one byte every second, while reading the status
line, the headers or the body, passes every one of them and can hold a worker for as long as it likes.
So each call gets a :class:`CallDeadline`, and the connections of a session built by
:func:`watched_session` hand it their socket while they serve that call (when the socket is made,
which covers a TLS handshake, and when an answer is awaited on a kept-alive one). When the deadline
passes, the watchdog shuts that socket down, the blocked read returns at once, and the transport reports
the deadline. A socket is handed back (under the deadline's lock) before its connection returns to the
pool, and a finished deadline takes none, so a late watchdog can never touch a socket another call uses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

# start_timer(seconds, callback) -> cancel: how a deadline waits, so a test can run the watchdog itself.
TimerStart = Callable[[float, Callable[[], None]], Callable[[], None]]

_calls = threading.local()


def thread_timer(seconds: float, callback: Callable[[], None]) -> Callable[[], None]:
    timer = threading.Timer(seconds, callback)
    timer.daemon = True
    timer.start()
    return timer.cancel


class CallDeadline:
    """One call's deadline: while it runs, shuts the call's socket down once ``seconds`` have passed.

    :param start_timer: starts the watchdog (a thread timer by default).
    """

    def __init__(self, seconds: float, *, start_timer: TimerStart = thread_timer) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._done = False
        self._passed = False
        self._cancel = start_timer(seconds, self._expire)

    @property
    def passed(self) -> bool:
        """Whether the deadline passed before :meth:`finish`: the call's answer, if any, is not to be
        trusted (a body with no length, cut by the shutdown, would look whole)."""
        with self._lock:
            return self._passed

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            if self._done:
                return
            self._sock = sock
            if self._passed:
                _shut(sock)

    def release(self, sock: socket.socket | None) -> None:
        """The call is done with ``sock`` (its connection goes back to the pool)."""
        with self._lock:
            if sock is not None and self._sock is sock:
                self._sock = None

    def finish(self) -> None:
        with self._lock:
            self._done = True
            self._sock = None
        self._cancel()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self._passed = True
            if self._sock is not None:
                _shut(self._sock)


def _shut(sock: socket.socket) -> None:
    # Closed already (the call failed another way): nothing left to stop.
    with contextlib.suppress(OSError):
        # The plain socket's shutdown, also for a TLS socket: SSLSocket.shutdown would drop its TLS
        # state under the feet of the thread reading from it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def call_deadline(seconds: float, *, start_timer: TimerStart = thread_timer) -> Iterator[CallDeadline]:
    """The calling thread's connections serve under a new deadline until the block ends."""
    deadline = CallDeadline(seconds, start_timer=start_timer)
    outer = getattr(_calls, "deadline", None)
    _calls.deadline = deadline
    try:
        yield deadline
    finally:
        _calls.deadline = outer
        deadline.finish()


def _watch(conn: Any, sock: socket.socket | None) -> None:
    deadline = getattr(_calls, "deadline", None)
    if deadline is not None and sock is not None:
        conn._together_deadline = deadline
        deadline.watch(sock)


class _WatchedMixin:
    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _watch(self, sock)
        return sock

    def getresponse(self) -> Any:
        _watch(self, self.sock)
        return super().getresponse()  # type: ignore[misc]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


def _put_back(conn: Any) -> None:
    deadline = conn.__dict__.pop("_together_deadline", None) if conn is not None else None
    if deadline is not None:
        deadline.release(getattr(conn, "sock", None))


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection

    def _put_conn(self, conn: Any) -> None:
        _put_back(conn)
        super()._put_conn(conn)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _put_conn(self, conn: Any) -> None:
        _put_back(conn)
        super()._put_conn(conn)


def _watched(manager: PoolManager) -> PoolManager:
    # Only plain HTTP(S) pools: a SOCKS proxy's own pool classes are left as they are (no deadline).
    if manager.pool_classes_by_scheme.get("http") is HTTPConnectionPool:
        manager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
    return manager


class DeadlineAdapter(HTTPAdapter):
    """requests' adapter, with pools whose connections serve under the calling thread's deadline."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _watched(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        return _watched(super().proxy_manager_for(proxy, **proxy_kwargs))


def watched_session() -> requests.Session:
    """A session whose calls a :func:`call_deadline` can cut short."""
    session = requests.Session()
    session.mount("https://", DeadlineAdapter())
    session.mount("http://", DeadlineAdapter())
    return session
