"""Fixtures shared by the integration tests that need a batch which never finishes."""

from __future__ import annotations

import pytest

from together_provider.client.models import BatchStatus
from together_provider.hooks.together import TogetherHook

from ..helpers import write_requests


@pytest.fixture
def running_batch(together_conn, tmp_path):
    hook = TogetherHook()
    src = write_requests(tmp_path / "forever.jsonl", n=1, model="emulator/never-finish")
    return hook.create_batch(hook.upload_file(src).id).id


def status_of(batch_id: str) -> BatchStatus:
    return TogetherHook().get_batch(batch_id).status
