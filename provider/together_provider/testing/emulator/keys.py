"""Typed keys shared by the app and its route modules."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .state import EmulatorState

STATE_KEY = web.AppKey("together_emulator_state", EmulatorState)


def _request_key(name: str, kind: type) -> Any:
    # aiohttp before 3.13 has no RequestKey and takes plain strings.
    factory = getattr(web, "RequestKey", None)
    return factory(name, kind) if factory is not None else name


# How many bytes of a download to send before hanging up, and whether a handler already did so.
TRUNCATE_AT_KEY = _request_key("emulator_truncate_at", object)
TRUNCATED_KEY = _request_key("emulator_truncated", bool)
