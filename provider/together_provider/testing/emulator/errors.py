"""Error bodies in the two shapes the real API uses, chosen by route family.

Batch routes answer ``{"error": "<string>"}`` (BatchErrorResponse in the spec); file routes and everything
else answer ``{"error": {"message", "type", "param", "code"}}`` (ErrorData). Clients must parse both, so
the emulator never mixes them up.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web

BATCH_FAMILY = "batch"
FILE_FAMILY = "file"
UPLOAD_FAMILY = "upload"

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    402: "credit_limit_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

_DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "insufficient_credits",
    403: "forbidden",
    404: "not_found",
    408: "request_timeout",
    409: "conflict",
    422: "unprocessable_entity",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}

DEFAULT_MESSAGES = {
    400: "bad request",
    401: "Invalid API key provided. You can find your API key at https://api.together.ai/settings/api-keys.",
    402: "Credit limit exceeded: add credits to your account to continue (emulated)",
    403: "forbidden (emulated)",
    404: "not found",
    408: "request timed out (emulated)",
    409: "conflict (emulated)",
    422: "unprocessable entity (emulated)",
    429: "Rate limit exceeded, please try again later (emulated)",
    500: "internal server error (emulated)",
    502: "bad gateway (emulated)",
    503: "The server is overloaded, please try again later (emulated)",
    504: "gateway timeout (emulated)",
}

PROXY_HTML = (
    "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


def family_of(path: str) -> str:
    if path.startswith("/v1/batches"):
        return BATCH_FAMILY
    if path.startswith("/_emulator/uploads"):
        return UPLOAD_FAMILY
    return FILE_FAMILY


def error_body(
    family: str, status: int, message: str | None = None, code: str | None = None, param: str | None = None
) -> dict | str:
    text = message or DEFAULT_MESSAGES.get(status, f"error {status} (emulated)")
    if family == BATCH_FAMILY:
        return {"error": text}
    if family == UPLOAD_FAMILY:
        # A presigned-storage URL answers like object storage, not like the API.
        return text
    error_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {
        "error": {
            "message": text,
            "type": error_type,
            "param": param,
            "code": code or _DEFAULT_CODES.get(status),
        }
    }


def error_response(
    family: str,
    status: int,
    message: str | None = None,
    *,
    code: str | None = None,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = error_body(family, status, message, code, param)
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers)
    return web.json_response(body, status=status, headers=headers)


def api_error(
    request: web.Request,
    status: int,
    message: str | None = None,
    *,
    code: str | None = None,
    param: str | None = None,
) -> web.Response:
    return error_response(family_of(request.path), status, message, code=code, param=param)


def html_response(status: int) -> web.Response:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    return web.Response(
        status=status, text=PROXY_HTML.format(status=status, reason=reason), content_type="text/html"
    )
