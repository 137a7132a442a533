"""An API answer's body, decoded and kept only up to a cap: no I/O, fed by the transports chunk by chunk.

A JSON answer is held in memory whole before it is parsed, so its size must be bounded *after*
decompression: a few hundred kilobytes of gzip can inflate to gigabytes. Neither requests nor aiohttp
can stop their own decoders part-way, so the transports ask for the raw bytes and decode them here,
with ``zlib``'s ``max_length``: never more than the room left under the cap is inflated at once,
whatever one chunk of the wire holds.
"""

from __future__ import annotations

import zlib

from together_provider.client.errors import InvalidResponseError, ResponseTooLargeError

# What the transports advertise on API calls: the encodings decoded here, and nothing else.
ACCEPT_ENCODING = "gzip, deflate"
MIB = 1024 * 1024


class BoundedBody:
    """Collects one answer's body: :meth:`feed` the bytes as they arrive, :meth:`result` at the end.

    :param limit: the most bytes the decoded body may hold.
    :param content_encoding: the answer's ``Content-Encoding`` header (None or empty: not encoded).
    :param operation: names the call in errors.
    :param cut: for an error answer, which is only read for a message to show: keep what decodes, up to
        ``limit``, and set :attr:`full` instead of raising, so the status still says what went wrong.
    :raises ResponseTooLargeError: from :meth:`feed` as soon as the decoded body passes ``limit``.
    :raises InvalidResponseError: an encoding this client did not ask for, or a corrupt stream.
    """

    def __init__(
        self, limit: int, content_encoding: str | None = None, *, operation: str = "call", cut: bool = False
    ) -> None:
        self.limit = limit
        self.operation = operation
        self.cut = cut
        # Nothing more will be kept: the reader may stop.
        self.full = False
        self._data = bytearray()
        try:
            self._encoding = _encoding(content_encoding, operation)
        except InvalidResponseError:
            if not cut:
                raise
            self._encoding = "identity"  # shown shortened as it came, but never inflated
        self._decoder = _decoder(self._encoding)
        # A "deflate" answer is meant to be zlib-wrapped, but some servers send raw deflate: the
        # first bytes tell which (as browsers and urllib3 decide).
        self._sniffing = self._encoding == "deflate"
        self._pending = b""

    def __len__(self) -> int:
        return len(self._data)

    def feed(self, chunk: bytes) -> None:
        if not chunk or self.full:
            return
        if self._decoder is None:
            self._keep(chunk)
            return
        if self._sniffing:
            chunk = self._pending + chunk
            if len(chunk) < 2:
                self._pending = chunk
                return
            self._sniffing, self._pending = False, b""
            if not _zlib_header(chunk):
                self._decoder = zlib.decompressobj(-zlib.MAX_WBITS)
        self._inflate(chunk)

    def result(self) -> bytes:
        """The decoded body. A body cut inside a compressed stream is returned as far as it got: the
        JSON parser then refuses it, as it refuses a cut plain body."""
        if not self.full:
            if self._sniffing and self._pending:
                self._sniffing = False
                self._inflate(self._pending)
            if self._decoder is not None and not self.full:
                self._keep(self._decoder.flush())
        return bytes(self._data)

    def _inflate(self, data: bytes) -> None:
        decoder = self._decoder
        assert decoder is not None
        while data and not self.full:
            try:
                # One byte more than the room left: getting it proves the body is too large.
                out = decoder.decompress(data, self.limit - len(self._data) + 1)
            except zlib.error as exc:
                if self.cut:
                    self.full = True
                    return
                raise InvalidResponseError(
                    f"{self.operation}: Together's answer says Content-Encoding {self._encoding}, "
                    f"but its body does not decode ({exc})",
                    transient=True,
                ) from None
            self._keep(out)
            data = decoder.unconsumed_tail
            if not data and decoder.eof and decoder.unused_data:
                # gzip allows several members one after another (what `cat a.gz b.gz` makes).
                data = decoder.unused_data
                decoder = self._decoder = _decoder(self._encoding)
                assert decoder is not None

    def _keep(self, data: bytes) -> None:
        room = self.limit - len(self._data)
        if len(data) > room:
            if not self.cut:
                raise ResponseTooLargeError(self.operation, self.limit)
            self.full = True
            data = data[:room]
        self._data += data


def _encoding(header: str | None, operation: str) -> str:
    text = (header or "").strip().lower()
    if text in ("", "identity"):
        return "identity"
    if text in ("gzip", "x-gzip", "deflate"):
        return "deflate" if text == "deflate" else "gzip"
    # Several codings stacked, or one never asked for (br, zstd): this client advertised neither.
    raise InvalidResponseError(
        f"{operation}: Together's answer uses Content-Encoding {header!r}, which this client did not "
        f"ask for (it accepts {ACCEPT_ENCODING})"
    )


def _decoder(encoding: str) -> zlib._Decompress | None:
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    return None


def _zlib_header(data: bytes) -> bool:
    """Whether ``data`` starts with a zlib header (RFC 1950: deflate method, a valid check value)."""
    return data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
