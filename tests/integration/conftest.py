"""Fixtures shared by the integration tests: a batch which never finishes, an in-memory object store."""

from __future__ import annotations

import importlib
import uuid

import pytest

from together_provider._compat import AIRFLOW_V_3_0_PLUS
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


@pytest.fixture
def memory_store():
    """A folder in fsspec's in-memory filesystem, attached to Airflow under the ``memory`` scheme."""
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    importlib.import_module("airflow.sdk.io" if AIRFLOW_V_3_0_PLUS else "airflow.io.store").attach(
        "memory", fs=fs
    )
    folder = f"/results-{uuid.uuid4().hex}"
    yield fs, folder
    if fs.exists(folder):
        fs.rm(folder, recursive=True)
