"""The two ways bytes move: requests (workers) and aiohttp (the triggerer's event loop).

They turn an :class:`ApiRequest` into a :class:`RawResponse` or a :class:`TransportError` and decide
nothing else: retries, parsing and errors live in ``together_provider.client``.

An API call's answer is read raw and decoded by :class:`~together_provider.client.bounded.BoundedBody`,
which stops at the connection's ``max_response_bytes``, and one attempt of an API call ends with
``APITimeoutError`` once ``total_timeout`` has passed. File transfers (the upload's PUT, a download) have
neither: their bodies stream between disk and socket, and a large file may rightly take long, so they keep
only the per-read timeouts, which a stalled transfer still trips.
"""

from __future__ import annotations

import http.client
import mmap
from typing import TYPE_CHECKING, Any, BinaryIO

import requests
from requests.exceptions import ChunkedEncodingError, ConnectTimeout, ReadTimeout
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from together_provider import __version__
from together_provider.client.bounded import ACCEPT_ENCODING, BoundedBody
from together_provider.client.errors import (
    APIConnectionError,
    APITimeoutError,
    IncompleteDownloadError,
    TransportError,
)
from together_provider.client.requests import ApiRequest, RawResponse
from together_provider.client.settings import ConnectionSettings
from together_provider.hooks.deadline import CallDeadline, TimerStart, call_deadline, thread_timer

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"airflow-provider-together/{__version__}"
# The download's one reused buffer. Where it sits matters more than its size: the kernel copies from the
# socket far more slowly into a buffer 16 bytes past a 32-byte boundary, where malloc puts a bytearray's
# or a bytes object's data, than into an aligned one, and an mmap is page-aligned. Much larger buffers
# made the writes to the page cache erratic. (The figures: benchmarks/README.md, "Figures behind code
# choices".)
_DOWNLOAD_CHUNK = 256 * 1024
_ANSWER_CHUNK = 64 * 1024


def _headers(settings: ConnectionSettings, request: ApiRequest[Any]) -> dict[str, str]:
    # Only encodings BoundedBody decodes: requests and aiohttp would otherwise offer more, and decode
    # without a bound.
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
    if request.authenticated:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if request.download_path is not None:
        # The length check compares bytes on disk with Content-Length: both must be the raw bytes.
        headers["Accept-Encoding"] = "identity"
        headers["Accept"] = "*/*"
    return headers


def _never_connected(exc: requests.ConnectionError) -> bool:
    """True when the request provably never left this machine (refused, DNS), so a create may retry."""
    reason = exc.args[0] if exc.args else None
    inner = getattr(reason, "reason", reason)
    return isinstance(inner, NewConnectionError) or "NewConnectionError" in type(inner).__name__


def _is_file_transfer(request: ApiRequest[Any]) -> bool:
    return (
        request.download_path is not None
        or request.upload_path is not None
        or request.upload_body is not None
    )


def _past_deadline(request: ApiRequest[Any], settings: ConnectionSettings) -> APITimeoutError:
    return APITimeoutError(
        f"{request.operation}: no complete answer within the call's deadline of {settings.total_timeout:g} s "
        f"(connection extra 'total_timeout')"
    )


def send_sync(
    session: requests.Session,
    settings: ConnectionSettings,
    request: ApiRequest[Any],
    *,
    start_timer: TimerStart = thread_timer,
) -> RawResponse:
    """One attempt. ``session`` should come from :func:`~together_provider.hooks.deadline.watched_session`:
    on another session the call's deadline cannot stop a read in progress.

    :param start_timer: how the call's deadline starts its watchdog (see ``hooks/deadline.py``).
    """
    if _is_file_transfer(request):
        return _exchange(session, settings, request, None)
    with call_deadline(settings.total_timeout, start_timer=start_timer) as deadline:
        try:
            response = _exchange(session, settings, request, deadline)
        except TransportError:
            if deadline.passed:
                raise _past_deadline(request, settings) from None
            raise
        if deadline.passed:
            raise _past_deadline(request, settings)
        return response


def _exchange(
    session: requests.Session,
    settings: ConnectionSettings,
    request: ApiRequest[Any],
    deadline: CallDeadline | None,
) -> RawResponse:
    url = settings.url_for(request.path)
    kwargs: dict[str, Any] = {
        "params": request.params,
        "headers": _headers(settings, request),
        "timeout": (settings.connect_timeout, settings.timeout),
        "allow_redirects": False,
        # Every body is read here, in chunks: a download to its file, an answer up to the cap.
        "stream": True,
    }
    if request.json is not None:
        kwargs["json"] = request.json
    if request.form is not None:
        # multipart/form-data, as Together's SDK sends it.
        kwargs["files"] = {key: (None, value) for key, value in request.form.items()}
    upload: Any = None
    if request.upload_path:
        upload = open(request.upload_path, "rb")  # noqa: SIM115
        kwargs["data"] = upload
    elif request.upload_body is not None:
        upload = request.upload_body.open()
        kwargs["data"] = _SizedBody(upload, request.upload_body.size)
    try:
        response = session.request(request.method, url, **kwargs)
    except ConnectTimeout:
        raise APITimeoutError(f"{request.operation}: timed out connecting", request_sent=False) from None
    except ReadTimeout:
        raise APITimeoutError(f"{request.operation}: no answer within {settings.timeout:g} s") from None
    except requests.ConnectionError as exc:
        raise APIConnectionError(
            f"{request.operation}: connection failed ({type(exc).__name__})",
            request_sent=not _never_connected(exc),
        ) from None
    except requests.RequestException as exc:
        raise TransportError(f"{request.operation}: {type(exc).__name__}") from None
    finally:
        if upload is not None:
            upload.close()
    with response:
        if request.download_path is not None and 200 <= response.status_code < 300:
            written = _stream_to_file(response, request, settings.timeout)
            return RawResponse(response.status_code, dict(response.headers), b"", written)
        body = _answer_body(response.status_code, response.headers, request, settings)
        try:
            for chunk in response.raw.stream(_ANSWER_CHUNK, decode_content=False):
                body.feed(chunk)
                if body.full:
                    break
        except ReadTimeoutError:
            raise APITimeoutError(f"{request.operation}: no data for {settings.timeout:g} s") from None
        except (ProtocolError, requests.ConnectionError, ConnectionError, http.client.HTTPException):
            raise APIConnectionError(
                f"{request.operation}: connection dropped while reading the answer"
            ) from None
        if deadline is not None:
            # Before the connection goes back to the pool (on leaving this block): from here on, a
            # late watchdog must not touch its socket.
            deadline.finish()
        return RawResponse(response.status_code, dict(response.headers), body.result())


def _answer_body(
    status: int, headers: Any, request: ApiRequest[Any], settings: ConnectionSettings
) -> BoundedBody:
    """Where an answer's body is collected: an error answer is only read for its message, so it is cut at
    the cap rather than refused, and its status still says what went wrong (a proxy's 502 stays a 502)."""
    return BoundedBody(
        settings.max_response_bytes,
        headers.get("Content-Encoding"),
        operation=request.operation,
        cut=not (200 <= status < 300 or status in request.accept),
    )


class _SizedBody:
    """A stream whose length requests can see (``len``), so it sends Content-Length and reads the body
    in blocks, instead of chunked encoding, which a presigned PUT refuses. Without ``__iter__`` requests
    does not take it for a generator."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, size: int = -1) -> bytes:
        return self._handle.read(size)


def _stream_to_file(response: requests.Response, request: ApiRequest[Any], timeout: float) -> int:
    """Write the body to ``request.download_path`` as it arrives; return the bytes written. A short body
    is not an error here: ``call.read_response`` compares the count with Content-Length."""
    assert request.download_path is not None
    written = 0
    # http.client's own response under urllib3's: its readinto fills one reused, aligned buffer straight
    # from the socket and decodes chunked transfer encoding itself. urllib3's stream() reads into a new
    # bytes object per chunk, whose misaligned data made the copy from the socket several times dearer.
    body = getattr(response.raw, "_fp", None)
    try:
        with open(request.download_path, "wb") as out:
            if isinstance(body, http.client.HTTPResponse):
                buffer = memoryview(mmap.mmap(-1, _DOWNLOAD_CHUNK))  # unmapped with the view
                while count := body.readinto(buffer):
                    out.write(buffer[:count])
                    written += count
            else:  # not a socket (a test double, another adapter): urllib3's generic path
                for chunk in response.raw.stream(_DOWNLOAD_CHUNK, decode_content=False):
                    out.write(chunk)
                    written += len(chunk)
    except (TimeoutError, ReadTimeoutError):
        raise APITimeoutError(
            f"{request.operation}: no data for {timeout:g} s after {written} bytes"
        ) from None
    except (
        ProtocolError,
        ChunkedEncodingError,
        requests.ConnectionError,
        ConnectionError,
        http.client.HTTPException,  # IncompleteRead of a cut chunked body, a bad chunk-size line
    ) as exc:
        # Disk errors (a full disk) are not in this list on purpose: they are not worth a retry.
        raise IncompleteDownloadError(
            f"{request.operation}: connection lost after {written} bytes ({type(exc).__name__})"
        ) from None
    return written


def _aiohttp_timeout(settings: ConnectionSettings) -> aiohttp.ClientTimeout:
    import aiohttp

    # sock_connect, not connect: aiohttp's connect also counts the wait for a free connection of the
    # shared pool, so thousands of waits starting at once would time out queueing, not connecting.
    # total does count that wait too, but share.gate lets no more requests in than the pool holds.
    return aiohttp.ClientTimeout(
        total=settings.total_timeout, sock_connect=settings.connect_timeout, sock_read=settings.timeout
    )


async def send_async(
    session: aiohttp.ClientSession, settings: ConnectionSettings, request: ApiRequest[Any]
) -> RawResponse:
    import aiohttp

    if _is_file_transfer(request):
        raise NotImplementedError("file transfers run on workers through the sync transport")
    data: Any = None
    if request.form is not None:
        data = aiohttp.FormData(dict(request.form))
    try:
        async with session.request(
            request.method,
            settings.url_for(request.path),
            params=request.params,
            json=request.json,
            data=data,
            headers=_headers(settings, request),
            allow_redirects=False,
            timeout=_aiohttp_timeout(settings),
            # Decoded by BoundedBody instead, which stops at the cap.
            auto_decompress=False,
        ) as response:
            body = _answer_body(response.status, response.headers, request, settings)
            async for chunk in response.content.iter_chunked(_ANSWER_CHUNK):
                body.feed(chunk)
                if body.full:
                    break
            return RawResponse(response.status, dict(response.headers), body.result())
    except aiohttp.ConnectionTimeoutError:
        raise APITimeoutError(f"{request.operation}: timed out connecting", request_sent=False) from None
    except aiohttp.ServerTimeoutError:
        raise APITimeoutError(f"{request.operation}: no answer within {settings.timeout:g} s") from None
    except TimeoutError:
        # Not a per-read timeout (those are ServerTimeoutError): the total one.
        raise _past_deadline(request, settings) from None
    except aiohttp.ClientConnectorError:
        raise APIConnectionError(f"{request.operation}: could not connect", request_sent=False) from None
    except aiohttp.ClientError as exc:
        raise APIConnectionError(f"{request.operation}: connection failed ({type(exc).__name__})") from None
