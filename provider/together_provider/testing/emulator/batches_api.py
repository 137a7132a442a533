"""Batch routes. Errors here are ``{"error": "<string>"}``, unlike the file routes.

An unknown ``input_file_id`` answers 400, not 404: the spec lists 400, 401, 429 and 500 for
``POST /batches`` and no 404, and a missing referenced resource is a bad request body, not a missing URL.
"""

from __future__ import annotations

from aiohttp import web

from .errors import api_error
from .keys import STATE_KEY
from .records import BatchRecord

ENDPOINTS = ("/v1/chat/completions", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/completions")
DEFAULT_WINDOW = "24h"
WINDOW_WARNING = "completion_window {window!r} is ignored: batches complete within a best-effort 24h window"


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/batches", create_batch)
    app.router.add_get("/v1/batches", list_batches)
    app.router.add_get("/v1/batches/{id}", retrieve_batch)
    app.router.add_post("/v1/batches/{id}/cancel", cancel_batch)


async def create_batch(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        return api_error(request, 400, "the request body must be JSON")
    if not isinstance(body, dict):
        return api_error(request, 400, "the request body must be a JSON object")
    missing = [name for name in ("endpoint", "input_file_id") if not body.get(name)]
    if missing:
        return api_error(request, 400, f"missing required field(s): {', '.join(missing)}")
    endpoint, input_file_id = body["endpoint"], body["input_file_id"]
    if not isinstance(endpoint, str) or endpoint not in ENDPOINTS:
        return api_error(
            request, 400, f"endpoint {endpoint!r} is not supported; use one of: {', '.join(ENDPOINTS)}"
        )
    if not isinstance(input_file_id, str):
        return api_error(request, 400, "input_file_id must be a string")
    window, priority, model_id = body.get("completion_window"), body.get("priority"), body.get("model_id")
    if window is not None and not isinstance(window, str):
        return api_error(request, 400, "completion_window must be a string")
    if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
        return api_error(request, 400, "priority must be an integer")
    if model_id is not None and not isinstance(model_id, str):
        return api_error(request, 400, "model_id must be a string")
    input_file = state.get_file(input_file_id)
    if input_file is None:
        return api_error(request, 400, f"input file not found: {input_file_id}")
    batch = state.create_batch(input_file, endpoint, model_id)
    envelope: dict = {"job": batch.to_api()}
    if window is not None and window != DEFAULT_WINDOW:
        envelope["warning"] = WINDOW_WARNING.format(window=window)
    return web.json_response(envelope, status=201)


async def list_batches(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    batches = state.batches_newest_first()
    for batch in batches:
        await state.refresh(batch)
    return web.json_response([batch.to_api() for batch in batches])


def _find(request: web.Request) -> BatchRecord | web.Response:
    batch = request.app[STATE_KEY].batches.get(request.match_info["id"])
    if batch is None:
        return api_error(request, 404, f"batch not found: {request.match_info['id']}")
    return batch


async def retrieve_batch(request: web.Request) -> web.Response:
    batch = _find(request)
    if isinstance(batch, web.Response):
        return batch
    await request.app[STATE_KEY].refresh(batch)
    return web.json_response(batch.to_api())


async def cancel_batch(request: web.Request) -> web.Response:
    batch = _find(request)
    if isinstance(batch, web.Response):
        return batch
    problem = await request.app[STATE_KEY].cancel(batch)
    if problem is not None:
        return api_error(request, 400, problem)
    return web.json_response(batch.to_api())
