"""An account rate limit in front of the emulator, which has none: a token bucket that answers 429 with
``Retry-After`` like Together does once the account's requests per second are spent.

    python -m benchmarks.rate_limit_proxy --upstream URL --rate 100

Every request is logged like the emulator logs them (``GET /_emulator/requests``), 429s included, so
the harness counts what the waits sent, not only what got through.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import time

import aiohttp
from aiohttp import web

from benchmarks.common import serve_until_stopped

STATE = web.AppKey("state", dict)
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = burst, time.monotonic()

    def take(self) -> float:
        """0 when a token was taken, else the seconds until one is free (the Retry-After)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


async def forward(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    entry = {
        "method": request.method,
        "path": request.path,
        "status": None,
        "time": time.time(),
        "fault": None,
    }
    state["log"].append(entry)
    wait = state["bucket"].take()
    if wait > 0:
        entry["status"] = 429
        return web.json_response(
            {"error": "rate limit exceeded (bench proxy)"},
            status=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    body = await request.read()
    async with state["session"].request(
        request.method, state["upstream"] + request.path_qs, headers=headers, data=body or None
    ) as upstream:
        payload = await upstream.read()
        entry["status"] = upstream.status
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_HEADERS}
        return web.Response(status=upstream.status, body=payload, headers=out)


async def requests_log(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE]["log"])


async def clear_log(request: web.Request) -> web.Response:
    request.app[STATE]["log"].clear()
    return web.json_response({"ok": True})


async def serve(args: argparse.Namespace) -> None:
    app = web.Application()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    app[STATE] = {
        "log": [],
        "bucket": Bucket(args.rate, args.burst or args.rate),
        "session": session,
        "upstream": args.upstream.rstrip("/"),
    }
    app.router.add_get("/_emulator/requests", requests_log)
    app.router.add_delete("/_emulator/requests", clear_log)
    app.router.add_route("*", "/v1/{tail:.*}", forward)
    try:
        await serve_until_stopped(app, args.host, args.port, "rate-limit-proxy")
    finally:
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rate", type=float, required=True, help="requests per second the account may make")
    parser.add_argument("--burst", type=float, default=0.0, help="bucket size (default: one second's worth)")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))


if __name__ == "__main__":
    main()
