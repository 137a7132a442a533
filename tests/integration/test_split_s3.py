"""SubmitBatchOperator(split=True) on an input in S3 (moto's server on loopback, tests/s3_server.py):
each part is read from its byte range of the object (a ranged read after a seek), also when its upload
is retried, and is exactly that slice."""

from __future__ import annotations

import importlib
import json
import uuid

import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (the test extra brings it)")
pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'airflow-provider-together[s3]')")
pytest.importorskip(
    "airflow.providers.amazon.aws.fs.s3",
    reason="the amazon provider is not installed (pip install 'airflow-provider-together[s3]')",
)

from together_provider._compat import AIRFLOW_V_3_0_PLUS
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import SubmitBatchOperator
from together_provider.tasks import storage

from ..helpers import RecordingTI, wait_terminal
from ..s3_server import S3Server

CONN = "s3_split"


def _forget_filesystems() -> None:
    """s3fs and Airflow cache one filesystem per connection: a test must not get another's client."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    module = "airflow.sdk.io.store" if AIRFLOW_V_3_0_PLUS else "airflow.io.store"
    cache = getattr(importlib.import_module(module), "_STORE_CACHE", None)
    if isinstance(cache, dict):
        cache.clear()


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    with S3Server(log=tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
def bucket(s3_server, monkeypatch):
    for key, value in s3_server.connection_env(CONN).items():
        monkeypatch.setenv(key, value)
    _forget_filesystems()
    yield s3_server.create_bucket(f"split-{uuid.uuid4().hex[:12]}")
    _forget_filesystems()


@pytest.fixture
def limits(emu):
    emu.set_limits(max_requests_per_batch=40)
    yield
    emu.set_limits(max_requests_per_batch=50_000)


def requests_file(path, n, pad):
    tag = uuid.uuid4().hex  # content no other test uploads: the emulator reuses a file of the same hash
    with open(path, "w") as handle:
        for i in range(n):
            body = {"model": "split/s3", "messages": [{"role": "user", "content": f"{tag} {i} " + "x" * pad}]}
            handle.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
    return path


def parts_of(emu, ids):
    hook = TogetherHook()
    return [emu.file_path(hook.get_batch(i).input_file_id).read_bytes() for i in ids]


def test_parts_of_an_s3_object_past_the_read_block(together_conn, emu, limits, s3_server, bucket, tmp_path):
    # Parts of about 2.5 read blocks each: ranges start and end inside the store's blocks.
    pad = storage.READ_BLOCK // 16
    source = requests_file(tmp_path / "split_s3.jsonl", 100, pad)
    s3_server.put(bucket, "in/split_s3.jsonl", source)
    op = SubmitBatchOperator(
        task_id="submit",
        input_file_path=S3Server.url_for(CONN, bucket, "in/split_s3.jsonl"),
        split=True,
        max_requests_per_batch=40,
    )
    ids = op.execute({"ti": RecordingTI()})
    lines = source.read_bytes().splitlines(keepends=True)
    assert parts_of(emu, ids) == [b"".join(lines[k : k + 40]) for k in (0, 40, 80)]
    assert [wait_terminal(TogetherHook(), i).raw_status for i in ids] == ["COMPLETED"] * 3


def test_a_retried_part_upload_is_read_again_from_its_offset(
    together_conn, emu, limits, s3_server, bucket, tmp_path
):
    source = requests_file(tmp_path / "split_s3_retry.jsonl", 90, 2_000)
    s3_server.put(bucket, "split_s3_retry.jsonl", source)
    # The second part's PUT is refused once: the retry re-opens the object at that part's first byte.
    emu.set_faults(
        {
            "method": "PUT",
            "path": "^/_emulator/uploads/",
            "kind": "status",
            "status": 503,
            "after": 1,
            "times": 1,
        }
    )
    op = SubmitBatchOperator(
        task_id="submit",
        input_file_path=S3Server.url_for(CONN, bucket, "split_s3_retry.jsonl"),
        split=True,
        max_requests_per_batch=40,
    )
    ids = op.execute({"ti": RecordingTI()})
    assert [e["status"] for e in emu.requests_log(method="PUT")] == [200, 503, 200, 200]
    lines = source.read_bytes().splitlines(keepends=True)
    assert parts_of(emu, ids) == [b"".join(lines[k : k + 40]) for k in (0, 40, 80)]
