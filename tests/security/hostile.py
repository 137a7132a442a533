"""A scriptable hostile HTTP server on 127.0.0.1, on raw sockets: each test decides, byte by byte, what
the provider gets back (drips, stalls, cut bodies, gzip bombs, echoed headers, redirects).

    def answer(request: Seen, conn: socket.socket) -> None:
        reply(conn, 401, b'{"error": "Incorrect API key provided: ' + request.header("authorization") ...)

    with HostileServer(answer) as server:
        hook = hook_for(server.url)
        ...
        assert server.seen[0].path == "/v1/batches/x"

The handler runs on the server's thread for each request; whatever it raises is kept in ``errors`` (a
test that wants a clean server checks it). Every connection is closed after one answer, so a test sees
exactly one request per connection.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


Handler = Callable[[Seen, socket.socket], None]


@dataclass
class HostileServer:
    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def __enter__(self) -> HostileServer:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hostile-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(10)
                request = _read_request(conn)
                if request is None:
                    return
                self.seen.append(request)
                self.handler(request, conn)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first: often what a test is after
            except BaseException as exc:  # kept for the test to look at
                self.errors.append(exc)


def _read_request(conn: socket.socket) -> Seen | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return Seen(method, path, headers, body)


def head(status: int, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def reply(
    conn: socket.socket,
    status: int,
    body: bytes,
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_type: str = "application/json",
) -> None:
    """A whole answer with Content-Length, sent at once."""
    all_headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
    conn.sendall(head(status, all_headers) + body)


def drip(
    conn: socket.socket, data: bytes, *, every: float, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Send ``data`` one byte at a time, ``every`` seconds apart: each read gets a byte well within any
    read timeout, so only a deadline for the whole call stops it."""
    for i in range(len(data)):
        conn.sendall(data[i : i + 1])
        sleep(every)


def gzip_bomb(inflated_bytes: int) -> bytes:
    """A small gzip member that inflates to ``inflated_bytes`` of spaces inside a JSON string (valid JSON
    once inflated, so only a bound on the inflated size refuses it)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(b'{"id": "b-1", "status": "COMPLETED", "pad": "')]
    block = b" " * (1 << 20)
    for _ in range(inflated_bytes >> 20):
        parts.append(compressor.compress(block))
    parts.append(compressor.compress(b'"}'))
    parts.append(compressor.flush())
    return b"".join(parts)


def gunzip(data: bytes) -> bytes:
    return gzip.decompress(data)


BATCH = b'{"id": "b-1", "status": "IN_PROGRESS", "endpoint": "/v1/chat/completions"}'
