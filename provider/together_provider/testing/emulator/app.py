"""The aiohttp application: auth, fault injection, latency and the request log around every API route."""

from __future__ import annotations

import asyncio
import secrets
import time
from email.utils import formatdate

from aiohttp import web

from . import batches_api, control_api, files_api
from .errors import error_response, family_of, html_response
from .faults import FaultRule
from .keys import STATE_KEY, TRUNCATE_AT_KEY, TRUNCATED_KEY
from .state import EmulatorState

CONTROL_PREFIX = "/_emulator/"
UPLOADS_PREFIX = "/_emulator/uploads/"
API_PREFIX = "/v1/"
MALFORMED_BODY = b'{"id": "0b7c1f8e-trunc'


def create_app(state: EmulatorState) -> web.Application:
    # Uploads are streamed to disk, so the in-memory body limit only guards the small JSON and form bodies.
    app = web.Application(middlewares=[emulator_middleware], client_max_size=16 * 1024 * 1024)
    app[STATE_KEY] = state
    files_api.add_routes(app)
    batches_api.add_routes(app)
    control_api.add_routes(app)
    return app


@web.middleware
async def emulator_middleware(request: web.Request, handler) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    path = request.path
    if path.startswith(CONTROL_PREFIX) and not path.startswith(UPLOADS_PREFIX):
        return await _call(request, handler)
    entry: dict = {"method": request.method, "path": path, "status": None, "time": time.time(), "fault": None}
    state.log_request(entry)
    rule = state.faults.pick(request.method, path)
    if rule is not None:
        entry["fault"] = rule.kind
    response = await _answer(request, handler, state, rule)
    if response is None:
        _drop(request)
        # aiohttp needs a response object; the transport is already closed so nothing reaches the client.
        return web.Response(status=499)
    entry["status"] = response.status
    return response


async def _answer(
    request: web.Request, handler, state: EmulatorState, rule: FaultRule | None
) -> web.StreamResponse | None:
    if rule is not None and rule.kind == "truncate":
        request[TRUNCATE_AT_KEY] = rule.truncate_at
    elif rule is not None and rule.phase == "before":
        if rule.kind != "slow":
            return _spoil(request, rule, None)
        await asyncio.sleep(rule.delay)
    if state.latency_ms > 0 and request.path.startswith(API_PREFIX):
        await asyncio.sleep(state.latency_ms / 1000.0)
    refusal = _check_auth(request, state)
    response = refusal if refusal is not None else await _call(request, handler)
    if rule is None:
        return response
    if rule.kind == "truncate":
        return await _truncate(request, response, rule.truncate_at)
    if rule.phase == "after":
        if rule.kind == "slow":
            await asyncio.sleep(rule.delay)
            return response
        return _spoil(request, rule, response)
    return response


def _check_auth(request: web.Request, state: EmulatorState) -> web.Response | None:
    if not request.path.startswith(API_PREFIX):
        return None
    family = family_of(request.path)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return error_response(family, 401, "Missing API key: send 'Authorization: Bearer <key>'")
    if scheme.lower() != "bearer" or not secrets.compare_digest(
        token.strip().encode(), state.api_key.encode()
    ):
        return error_response(family, 401)
    return None


async def _call(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        if request.path.startswith(CONTROL_PREFIX) and not request.path.startswith(UPLOADS_PREFIX):
            return web.json_response({"error": exc.reason}, status=exc.status, headers=headers)
        return error_response(family_of(request.path), exc.status, exc.reason, headers=headers)


def _spoil(request: web.Request, rule: FaultRule, real: web.StreamResponse | None) -> web.Response | None:
    """The faulty answer that replaces (or, in phase "after", follows the work of) the real one."""
    if rule.kind == "drop":
        return None
    if rule.kind == "html":
        return html_response(rule.status or 502)
    if rule.kind == "malformed":
        body = MALFORMED_BODY
        if isinstance(real, web.Response) and real.body:
            real_body = bytes(real.body)  # type: ignore[arg-type]
            body = real_body[: max(len(real_body) // 2, 1)]
        return web.Response(status=rule.status or 200, body=body, content_type="application/json")
    return _status_fault(request, rule)


def _status_fault(request: web.Request, rule: FaultRule) -> web.Response:
    status = rule.status or 500
    headers = dict(rule.headers)
    if rule.retry_after is not None:
        headers["Retry-After"] = rule.retry_after
    if rule.retry_after_http_date is not None:
        headers["Retry-After"] = formatdate(time.time() + rule.retry_after_http_date, usegmt=True)
    if rule.retry_after_ms is not None:
        headers["retry-after-ms"] = rule.retry_after_ms
    if rule.should_retry is not None:
        headers["x-should-retry"] = "true" if rule.should_retry else "false"
    if rule.body is not None:
        if isinstance(rule.body, str):
            return web.Response(status=status, text=rule.body, headers=headers)
        return web.json_response(rule.body, status=status, headers=headers)
    return error_response(family_of(request.path), status, rule.message, headers=headers)


async def _truncate(
    request: web.Request, response: web.StreamResponse, cut: int | None
) -> web.StreamResponse:
    """Promise the full Content-Length, send only part of the body, then hang up."""
    if request.get(TRUNCATED_KEY):
        return response
    body = bytes(response.body) if isinstance(response, web.Response) and response.body else b""  # type: ignore[arg-type]
    limit = len(body) // 2 if cut is None else max(0, min(cut, len(body) - 1))
    stream = web.StreamResponse(status=response.status)
    for name in ("Content-Type", "Retry-After"):
        if name in response.headers:
            stream.headers[name] = response.headers[name]
    stream.content_length = len(body)
    await stream.prepare(request)
    await stream.write(body[:limit])
    _drop(request)
    return stream


def _drop(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.close()
