"""The bounded body decoder: what a hostile or broken server sends never grows memory past the cap."""

from __future__ import annotations

import gzip
import zlib

import pytest

from together_provider.client.bounded import BoundedBody
from together_provider.client.errors import InvalidResponseError, ResponseTooLargeError, is_transient

BODY = b'{"id": "b-1", "status": "COMPLETED", "pad": "' + b"x" * 5000 + b'"}'


def _fed(body: BoundedBody, data: bytes, size: int = 7) -> bytes:
    for start in range(0, len(data), size):
        body.feed(data[start : start + size])
    return body.result()


def _deflate(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize("encoding", [None, "", "identity", "Identity "])
def test_plain_body_kept_as_sent(encoding):
    assert _fed(BoundedBody(len(BODY), encoding), BODY) == BODY


@pytest.mark.parametrize(
    ("encoding", "encoded"),
    # mtime=0: the bytes are in the test ids, and pytest-xdist's workers must each collect the same ids
    # (gzip's header otherwise holds the second each worker imported this module in).
    [
        ("gzip", gzip.compress(BODY, mtime=0)),
        ("x-gzip", gzip.compress(BODY, mtime=0)),
        ("deflate", _deflate(BODY, zlib.MAX_WBITS)),  # zlib-wrapped, as the RFC says
        ("deflate", _deflate(BODY, -zlib.MAX_WBITS)),  # raw, as some servers send it
    ],
)
@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_encoded_body_decoded_in_any_chunking(encoding, encoded, chunk):
    assert _fed(BoundedBody(len(BODY), encoding), encoded, chunk) == BODY


def test_gzip_members_one_after_another():
    assert _fed(BoundedBody(100, "gzip"), gzip.compress(b"[1, ") + gzip.compress(b"2]")) == b"[1, 2]"


def test_plain_body_one_byte_past_the_cap_refused():
    body = BoundedBody(len(BODY) - 1, None, operation="get batch")
    with pytest.raises(ResponseTooLargeError) as caught:
        _fed(body, BODY, 1000)
    assert "get batch" in str(caught.value)
    assert "max_response_mb" in str(caught.value)
    assert len(body) <= len(BODY) - 1


def test_bomb_refused_after_inflating_no_more_than_the_cap():
    limit = 1 << 20
    bomb = gzip.compress(b" " * (64 << 20), compresslevel=9)  # 64 MiB in about 64 KiB
    body = BoundedBody(limit, "gzip")
    with pytest.raises(ResponseTooLargeError) as caught:
        # One chunk holding the whole bomb: the decoder must still stop at the cap, not inflate it all.
        body.feed(bomb)
    assert len(body) <= limit
    assert caught.value.limit == limit
    assert isinstance(caught.value, InvalidResponseError)
    assert not is_transient(caught.value)


def test_cap_exactly_reached_is_accepted():
    assert _fed(BoundedBody(len(BODY), "gzip"), gzip.compress(BODY)) == BODY


def test_corrupt_stream_is_a_transient_invalid_answer():
    body = BoundedBody(1000, "gzip")
    with pytest.raises(InvalidResponseError) as caught:
        _fed(body, gzip.compress(b"abc")[:10] + b"\xff\xff\xff\xff")
    assert is_transient(caught.value)
    assert not isinstance(caught.value, ResponseTooLargeError)


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, br"])
def test_encoding_never_asked_for_refused(encoding):
    with pytest.raises(InvalidResponseError, match="did not ask for"):
        BoundedBody(1000, encoding)


def test_cut_compressed_body_returned_as_far_as_it_got():
    encoded = gzip.compress(BODY)
    got = _fed(BoundedBody(len(BODY), "gzip"), encoded[: len(encoded) // 2])
    assert BODY.startswith(got)


def test_error_answer_cut_at_the_cap_not_refused():
    body = BoundedBody(100, "gzip", cut=True)
    body.feed(gzip.compress(b"<html>" + b"x" * 10_000))
    assert body.full
    assert body.result() == (b"<html>" + b"x" * 10_000)[:100]


def test_error_answer_in_an_unknown_or_corrupt_encoding_kept_raw_or_as_far_as_it_decodes():
    raw = BoundedBody(100, "br", cut=True)
    raw.feed(b"not brotli")
    assert raw.result() == b"not brotli"
    corrupt = BoundedBody(100, "gzip", cut=True)
    corrupt.feed(gzip.compress(b"abc")[:10] + b"\xff\xff\xff\xff")  # a gzip header, then no deflate
    assert corrupt.full and corrupt.result() == b""
