"""One emulator per test module, reset before each test."""

from __future__ import annotations

import pytest
import requests

from tests.emulator.helpers import API_KEY, AUTH
from together_provider.testing.emulator import EmulatorServer


@pytest.fixture(scope="module")
def emu():
    with EmulatorServer(api_key=API_KEY, validating_seconds=0.2, processing_seconds=0.5) as server:
        yield server


@pytest.fixture(autouse=True)
def _clean(emu):
    emu.reset()
    yield


@pytest.fixture
def http():
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session
