"""Fixtures for the hostile-server cases: a connection pointing at a :class:`HostileServer`, and the sync
hook and async client built on it the way tasks and triggers build theirs."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.security.hostile import Handler, HostileServer

# A key shaped like Together's, long enough that finding it in a text cannot be a coincidence.
SECRET_KEY = "sk-hostile-test-4f1d2c3b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def hostile(monkeypatch) -> Callable[..., HostileServer]:
    """``hostile(handler, **extra)``: a started server and ``together_default`` pointing at it (an
    environment connection with ``SECRET_KEY``), stopped after the test."""
    servers: list[HostileServer] = []

    def start(handler: Handler, **extra: object) -> HostileServer:
        server = HostileServer(handler).__enter__()
        servers.append(server)
        extra.setdefault("max_retries", 0)
        conn = {"conn_type": "together", "host": server.url, "password": SECRET_KEY, "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", json.dumps(conn))
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def hook():
    from together_provider.hooks.together import TogetherHook

    return TogetherHook()
