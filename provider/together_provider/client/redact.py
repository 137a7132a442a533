"""Keeping the API key out of every text a server sends back.

A server or a proxy in front of it may echo the key: a 401 body quoting ``Incorrect API key provided:
Bearer sk-...``, an error page quoting the request, a header repeating ``Authorization``. Every answer
passes through :func:`redacted` before anything reads it, so no message, exception, log line, XCom or
trigger event built from an answer can carry the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from together_provider.client.requests import RawResponse

REDACTED = "[redacted]"
# Shorter texts are not taken as secrets: replacing them would garble ordinary answers, and a key that
# short is not Together's.
MIN_SECRET_LENGTH = 8
# Any bearer token, whether or not it is this connection's key (a proxy may hold another).
_BEARER = re.compile(rb"(?i)\b(bearer\s+)[\w.~+/=-]+")


def _secrets(secrets: Iterable[str]) -> list[bytes]:
    return [s.encode() for s in secrets if s and len(s) >= MIN_SECRET_LENGTH]


def redact_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    for secret in _secrets(secrets):
        if secret in data:
            data = data.replace(secret, REDACTED.encode())
    return _BEARER.sub(rb"\1" + REDACTED.encode(), data)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret and any bearer token replaced by ``[redacted]``."""
    return redact_bytes(text.encode("utf-8", "surrogateescape"), secrets).decode("utf-8", "surrogateescape")


def redacted(response: RawResponse, secrets: Iterable[str]) -> RawResponse:
    """The answer with each secret and any bearer token removed from its body and header values."""
    secrets = list(secrets)
    headers = {name: redact_text(value, secrets) for name, value in response.headers.items()}
    return RawResponse(response.status, headers, redact_bytes(response.body, secrets), response.bytes_written)
