"""One exception tree for every way a Together call can fail.

Callers branch on the class, never on the message text. Every API error carries the HTTP status,
the message Together sent (parsed from whichever of its body shapes arrived) and the request id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

# Proxies answer with whole HTML pages; an exception text should stay readable.
_MAX_TEXT = 300
# The caller's to fix: asking again, now or in an hour, gets the same answer.
PERMANENT_STATUSES = frozenset({400, 401, 402, 403, 404, 422})
# Worth asking again besides 5xx: a server-side timeout, lock contention on Together's side (its SDKs
# retry 409) and the rate limit.
TRANSIENT_STATUSES = frozenset({408, 409, 429})


class TogetherError(Exception):
    """Base of every error raised by this provider's Together client."""


class InputFileError(TogetherError, ValueError):
    """A batch input file breaks a rule of the Batch API; ``line`` is 1-based, or None for file rules."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        where = f"{path}" if path else "input file"
        if line is not None:
            where += f", line {line}"
        super().__init__(f"{where}: {message}")


class InvalidResponseError(TogetherError):
    """Together answered 2xx, but the body is not what the API promises (not JSON, fields missing).

    ``transient`` is True for a body that is not even JSON (cut off in transit: worth another try) and
    False for well-formed JSON that lacks what the API promises (asking again will not change it).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        transient: bool = False,
    ):
        self.status_code = status_code
        self.request_id = request_id
        self.transient = transient
        super().__init__(_with_request_id(message, request_id))


class ResponseTooLargeError(InvalidResponseError):
    """An API answer (not a file download) grew past the connection's cap, counted after decompression.

    Not transient: the same call gets the same answer. ``limit`` is in bytes.
    """

    def __init__(self, operation: str, limit: int) -> None:
        self.limit = limit
        super().__init__(
            f"{operation}: Together's answer is larger than {limit / (1024 * 1024):g} MiB once decoded, "
            f"so it was not read further; if answers this large are expected, raise the connection "
            f"extra 'max_response_mb'"
        )


class TransportError(TogetherError):
    """No usable answer arrived: the connection failed, was dropped, or timed out.

    ``request_sent`` tells whether the request may have reached the server, which decides whether a
    call that is not idempotent (batch create) can be retried safely.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        self.request_sent = request_sent
        super().__init__(message)


class APIConnectionError(TransportError):
    """The connection could not be made or broke before a complete answer arrived."""


class APITimeoutError(TransportError):
    """No answer within the configured timeout."""


class IncompleteDownloadError(TransportError):
    """A download ended before the number of bytes the server announced in Content-Length."""


class APIStatusError(TogetherError):
    """Together answered with an HTTP error status."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        request_id: str | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        operation: str | None = None,
    ) -> None:
        self.message = message
        self.operation = operation
        self.status_code = status_code
        self.request_id = request_id
        self.error_type = error_type
        self.error_code = error_code
        self.param = param
        self.headers = dict(headers or {})
        text = f"Together API answered {status_code}: {message}"
        if operation:
            text = f"{operation}: {text}"
        if self.hint:
            text += f" ({self.hint})"
        super().__init__(_with_request_id(text, request_id))


class BadRequestError(APIStatusError):
    hint = "the request was refused as invalid; fix the arguments named above"


class AuthenticationError(APIStatusError):
    hint = "check the API key in the connection's password field or TOGETHER_API_KEY"


class PaymentRequiredError(APIStatusError):
    hint = "the Together account is out of credits; add credits or raise its spending limit"


class PermissionDeniedError(APIStatusError):
    hint = "the API key is valid but may not use this resource"


class NotFoundError(APIStatusError):
    hint = "check the id: it does not exist for this API key"


class ConflictError(APIStatusError):
    pass


class UnprocessableEntityError(APIStatusError):
    hint = "the request was well formed but its values were refused"


class RateLimitError(APIStatusError):
    """429: carries the server's wait hint in seconds, when it sent one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class ServerError(APIStatusError):
    """5xx: Together or a proxy in front of it failed; usually worth another try."""


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def _with_request_id(text: str, request_id: str | None) -> str:
    return f"{text} [request id {request_id}]" if request_id else text


def one_line(text: str, limit: int) -> str:
    """A server's text as a message may carry it: control characters (a CR/LF that could forge a log
    line, a terminal escape) blanked, whitespace collapsed, and at most ``limit`` characters."""
    # Only the head is ever shown: cut first, so a huge answer costs no more than a short one.
    head = text[: limit * 4]
    text = " ".join("".join(c if c.isprintable() else " " for c in head).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(text: str) -> str:
    return one_line(text, _MAX_TEXT)


def parse_error_body(body: bytes | str | None) -> dict[str, str | None]:
    """Read Together's error bodies: ``{"error": "..."}`` (batches), ``{"error": {...}}`` (files),
    ``{"message": ...}``, or anything else (an HTML page from a proxy, an empty body)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    out: dict[str, str | None] = {"message": None, "type": None, "code": None, "param": None}
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            out["message"] = err
        elif isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("error")
            out["message"] = msg if isinstance(msg, str) else (json.dumps(msg) if msg else None)
            for key in ("type", "code", "param"):
                value = err.get(key)
                out[key] = None if value is None else str(value)
    if not out["message"]:
        stripped = text.strip()
        if stripped.lower().startswith(("<!doctype", "<html")) or "<body" in stripped.lower():
            out["message"] = "non-JSON error page (HTML), probably from a proxy or load balancer"
        elif stripped:
            out["message"] = _short(stripped)
        else:
            out["message"] = "empty error body"
    else:
        out["message"] = _short(out["message"] or "")
    return out


def request_id_from(headers: Mapping[str, str]) -> str | None:
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("x-request-id", "x-together-request-id", "request-id", "cf-ray"):
        if lowered.get(name):
            return one_line(lowered[name], 128)
    return None


def error_from_response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes | str | None,
    *,
    retry_after: float | None = None,
    operation: str | None = None,
) -> APIStatusError:
    """Build the exception that matches an HTTP error answer."""
    parsed = parse_error_body(body)
    cls = _BY_STATUS.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else APIStatusError
    kwargs: dict[str, Any] = {
        "status_code": status_code,
        "request_id": request_id_from(headers),
        "error_type": parsed["type"],
        "error_code": parsed["code"],
        "param": parsed["param"],
        "headers": headers,
        "operation": operation,
    }
    if cls is RateLimitError:
        kwargs["retry_after"] = retry_after
    return cls(parsed["message"] or "", **kwargs)


def is_transient(error: BaseException) -> bool:
    """Whether the same call could succeed later with nothing changed.

    The one answer to "wait and try again, or fail now" for every caller: the retry policy asks it
    per attempt, a task per try (see :func:`permanent_failure`).
    """
    if isinstance(error, TransportError):
        return True
    if isinstance(error, APIStatusError):
        return error.status_code in TRANSIENT_STATUSES or error.status_code >= 500
    if isinstance(error, InvalidResponseError):
        return error.transient
    return False


def permanent_failure(error: BaseException) -> str | None:
    """What to tell the user when no retry can fix ``error`` (bad input, a wrong key, an unknown id, a
    broken answer), or None when waiting might (or when the error is not one this client knows)."""
    if isinstance(error, TogetherError) and is_transient(error):
        return None
    if isinstance(error, InvalidResponseError):
        return f"Together's answer broke the API's promise: {error}"
    if isinstance(error, (TogetherError, ValueError, FileNotFoundError, IsADirectoryError)):
        return str(error)
    return None
