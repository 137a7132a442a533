"""The two ways bytes move: requests (workers) and aiohttp (the triggerer's event loop).

They turn an :class:`ApiRequest` into a :class:`RawResponse` or a :class:`TransportError` and decide
nothing else: retries, parsing and errors live in ``together_provider.client``.
"""

from __future__ import annotations

import http.client
import mmap
from typing import TYPE_CHECKING, Any, BinaryIO

import requests
from requests.exceptions import ChunkedEncodingError, ConnectTimeout, ReadTimeout
from urllib3.exceptions import NewConnectionError, ProtocolError, ReadTimeoutError

from together_provider import __version__
from together_provider.client.errors import (
    APIConnectionError,
    APITimeoutError,
    IncompleteDownloadError,
    TransportError,
)
from together_provider.client.requests import ApiRequest, RawResponse
from together_provider.client.settings import ConnectionSettings

if TYPE_CHECKING:
    import aiohttp

USER_AGENT = f"airflow-provider-together/{__version__}"
# The download's one reused buffer. Where it sits matters more than its size: the kernel copies from the
# socket far more slowly into a buffer 16 bytes past a 32-byte boundary, where malloc puts a bytearray's
# or a bytes object's data, than into an aligned one, and an mmap is page-aligned. Much larger buffers
# made the writes to the page cache erratic. (The figures: benchmarks/README.md, "Figures behind code
# choices".)
_DOWNLOAD_CHUNK = 256 * 1024


def _headers(settings: ConnectionSettings, request: ApiRequest[Any]) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
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


def send_sync(
    session: requests.Session, settings: ConnectionSettings, request: ApiRequest[Any]
) -> RawResponse:
    url = settings.url_for(request.path)
    kwargs: dict[str, Any] = {
        "params": request.params,
        "headers": _headers(settings, request),
        "timeout": (settings.connect_timeout, settings.timeout),
        "allow_redirects": False,
        "stream": request.download_path is not None,
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
        try:
            body = response.content
        except (ChunkedEncodingError, requests.ConnectionError, ProtocolError):
            raise APIConnectionError(
                f"{request.operation}: connection dropped while reading the answer"
            ) from None
        return RawResponse(response.status_code, dict(response.headers), body)


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
    return aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.timeout
    )


async def send_async(
    session: aiohttp.ClientSession, settings: ConnectionSettings, request: ApiRequest[Any]
) -> RawResponse:
    import aiohttp

    if (
        request.upload_path is not None
        or request.upload_body is not None
        or request.download_path is not None
    ):
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
        ) as response:
            body = await response.read()
            return RawResponse(response.status, dict(response.headers), body)
    except aiohttp.ConnectionTimeoutError:
        raise APITimeoutError(f"{request.operation}: timed out connecting", request_sent=False) from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        raise APITimeoutError(f"{request.operation}: no answer within {settings.timeout:g} s") from None
    except aiohttp.ClientConnectorError:
        raise APIConnectionError(f"{request.operation}: could not connect", request_sent=False) from None
    except aiohttp.ClientError as exc:
        raise APIConnectionError(f"{request.operation}: connection failed ({type(exc).__name__})") from None
