"""An OpenAI-shaped Batch API stub for comparison (b), in its own process like the emulator.

    python -m benchmarks.openai_stub --port 0 --latency-ms 50

``GET /v1/batches/{id}`` answers an OpenAI Batch object that stays ``in_progress`` until
``POST /_emulator/complete`` completes every batch at once. It serves the same ``/_emulator/requests`` and
``/_emulator/clock`` control routes as the Together emulator, so the harness counts and slows both the
same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from aiohttp import web

from benchmarks.common import serve_until_stopped

STATE = web.AppKey("state", dict)


def _batch(batch_id: str, created: int, completed: int | None = None) -> dict:
    status = "in_progress" if completed is None else "completed"
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": "file-bench",
        "completion_window": "24h",
        "status": status,
        "output_file_id": None if completed is None else "file-bench-output",
        "error_file_id": None,
        "created_at": created,
        "in_progress_at": created,
        "expires_at": created + 86400,
        "finalizing_at": None,
        "completed_at": completed,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 1, "completed": 0, "failed": 0},
        "metadata": {},
    }


async def get_batch(request: web.Request) -> web.Response:
    state = request.app[STATE]
    entry = {"method": "GET", "path": request.path, "status": 200, "time": time.time(), "fault": None}
    state["log"].append(entry)
    if state["latency_ms"] > 0:
        await asyncio.sleep(state["latency_ms"] / 1000.0)
    return web.json_response(_batch(request.match_info["id"], state["created"], state["completed"]))


async def complete(request: web.Request) -> web.Response:
    request.app[STATE]["completed"] = int(time.time())
    return web.json_response({"ok": True})


async def requests_log(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE]["log"])


async def clear_log(request: web.Request) -> web.Response:
    request.app[STATE]["log"].clear()
    return web.json_response({"ok": True})


async def clock(request: web.Request) -> web.Response:
    body = await request.json()
    if body.get("latency_ms") is not None:
        request.app[STATE]["latency_ms"] = float(body["latency_ms"])
    return web.json_response({"latency_ms": request.app[STATE]["latency_ms"]})


async def serve(host: str, port: int, latency_ms: float) -> None:
    app = web.Application()
    app[STATE] = {"log": [], "latency_ms": latency_ms, "created": int(time.time()), "completed": None}
    app.router.add_get("/v1/batches/{id}", get_batch)
    app.router.add_get("/_emulator/requests", requests_log)
    app.router.add_delete("/_emulator/requests", clear_log)
    app.router.add_post("/_emulator/clock", clock)
    app.router.add_post("/_emulator/complete", complete)
    await serve_until_stopped(app, host, port, "openai-stub")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.latency_ms))


if __name__ == "__main__":
    main()
