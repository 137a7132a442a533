"""Control routes under /_emulator/ for tests and scripts: no auth, never logged, never faulted."""

from __future__ import annotations

from aiohttp import web

from .faults import FaultPlan
from .files_api import PURPOSES
from .keys import STATE_KEY


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_emulator/health", health)
    app.router.add_post("/_emulator/reset", reset)
    app.router.add_get("/_emulator/requests", requests_log)
    app.router.add_delete("/_emulator/requests", clear_requests)
    app.router.add_get("/_emulator/faults", get_faults)
    app.router.add_post("/_emulator/faults", set_faults)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_post("/_emulator/batches/{id}/status", force_status)
    app.router.add_get("/_emulator/clock", get_clock)
    app.router.add_post("/_emulator/clock", set_clock)
    app.router.add_post("/_emulator/files", synthetic_file)
    app.router.add_get("/_emulator/limits", get_limits)
    app.router.add_post("/_emulator/limits", set_limits)


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request) -> dict | web.Response:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return _bad("the request body must be JSON")
    return body if isinstance(body, dict) else _bad("the request body must be a JSON object")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"ok": True})


async def requests_log(request: web.Request) -> web.Response:
    return web.json_response(list(request.app[STATE_KEY].request_log))


async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE_KEY].request_log.clear()
    return web.json_response({"ok": True})


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].faults.to_dict())


async def set_faults(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        return web.json_response(request.app[STATE_KEY].set_faults(body))
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))


async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE_KEY].faults = FaultPlan()
    return web.json_response({"ok": True})


async def force_status(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    batch = state.batches.get(request.match_info["id"])
    if batch is None:
        return _bad(f"batch not found: {request.match_info['id']}", 404)
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        await state.force_status(batch, str(body.get("status", "")), body.get("error"))
    except ValueError as exc:
        return _bad(str(exc))
    return web.json_response(batch.to_api())


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].clock_settings())


async def set_clock(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        return web.json_response(request.app[STATE_KEY].set_clock(body))
    except (TypeError, ValueError) as exc:
        return _bad(f"clock values must be non-negative numbers: {exc}")


async def get_limits(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].limits())


async def set_limits(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    try:
        return web.json_response(request.app[STATE_KEY].set_limits(body))
    except ValueError as exc:
        return _bad(str(exc))


async def synthetic_file(request: web.Request) -> web.Response:
    body = await _json_object(request)
    if isinstance(body, web.Response):
        return body
    purpose = body.get("purpose", "batch-generated")
    if purpose not in PURPOSES:
        return _bad(f"purpose must be one of: {', '.join(PURPOSES)}")
    try:
        record = await request.app[STATE_KEY].create_synthetic_file(
            body.get("bytes"), purpose, body.get("filename")
        )
    except ValueError as exc:
        return _bad(str(exc))
    except OSError as exc:
        return _bad(f"could not write the file: {exc}", 500)
    return web.json_response(record.to_api(), status=201)
