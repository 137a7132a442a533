"""Inputs and downloads in S3, over real HTTP: moto's S3 server on loopback (tests/s3_server.py) reached
through Airflow's ObjectStoragePath and the amazon provider's s3fs filesystem, the Together emulator on
the other side. The connection is an ``AIRFLOW_CONN_<ID>`` with the server in ``extra.endpoint_url``.

403s come from a second moto server that enforces auth (``INITIAL_NO_AUTH_ACTION_COUNT=0``): it holds no
IAM user, so it refuses every key with S3's own 403 ``InvalidAccessKeyId``, as a store refuses a
connection's credentials.
"""

from __future__ import annotations

import importlib
import io
import json
import uuid

import pytest

pytest.importorskip("moto.server", reason="moto[server] is not installed (the test extra brings it)")
pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 'airflow-provider-together[s3]')")
pytest.importorskip(
    "airflow.providers.amazon.aws.fs.s3",
    reason="the amazon provider is not installed (pip install 'airflow-provider-together[s3]')",
)

import requests

from together_provider._compat import AIRFLOW_V_3_0_PLUS, AirflowFailException, ObjectStoragePath
from together_provider.client.errors import IncompleteDownloadError
from together_provider.hooks.together import TogetherHook
from together_provider.hooks.transports import _SizedBody
from together_provider.operators.batch import DownloadBatchFileOperator, SubmitBatchOperator
from together_provider.tasks import storage

from ..conftest import connection_uri_env
from ..helpers import RecordingTI, wait_terminal, write_requests
from ..s3_server import S3Server

CONN = "s3_test"
STRICT_CONN = "s3_refused"


def _forget_filesystems() -> None:
    """s3fs keeps one filesystem per set of arguments and Airflow one per connection: a test that
    changes a connection must not get the previous test's client."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    module = "airflow.sdk.io.store" if AIRFLOW_V_3_0_PLUS else "airflow.io.store"
    cache = getattr(importlib.import_module(module), "_STORE_CACHE", None)
    if isinstance(cache, dict):
        cache.clear()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    with S3Server(log=tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture(scope="session")
def refusing_s3_server(tmp_path_factory):
    with S3Server(enforce_auth=True, log=tmp_path_factory.mktemp("s3") / "moto-auth.log") as server:
        yield server


@pytest.fixture
def bucket(s3_server, monkeypatch):
    """A fresh bucket on the session's server, reached through connection ``s3_test``."""
    for key, value in s3_server.connection_env(CONN).items():
        monkeypatch.setenv(key, value)
    _forget_filesystems()
    name = s3_server.create_bucket(f"test-{uuid.uuid4().hex[:12]}")
    yield name
    _forget_filesystems()


@pytest.fixture
def no_retry(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))


def url(bucket: str, key: str, conn: str = CONN) -> str:
    return S3Server.url_for(conn, bucket, key)


def download(file_id, path):
    return DownloadBatchFileOperator(task_id="download", file_id=file_id, path=path).execute(
        {"ti": RecordingTI()}
    )


def submit(path):
    return SubmitBatchOperator(task_id="submit", input_file_path=path).execute({"ti": RecordingTI()})


def big_input(path, size):
    """A valid input of about ``size`` bytes (each line padded to ~10 kB)."""
    pad = "x" * 10_000
    with open(path, "w") as handle:
        for i in range(size // 10_100 + 1):
            body = {"model": "test/model", "messages": [{"role": "user", "content": f"{i} {pad}"}]}
            handle.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
    return path


# ---- downloads into S3 ----------------------------------------------------------------------------


def test_download_into_s3_lands_the_content_and_no_temporary_key(
    together_conn, emu, s3_server, bucket, task_logs
):
    # Over the store writer's part size, so the upload to S3 is a multipart one.
    made = emu.create_synthetic_file(12_000_000)
    task_logs()
    got = download(made["id"], url(bucket, "results/output.jsonl"))
    assert got == url(bucket, "results/output.jsonl")
    assert s3_server.get(bucket, "results/output.jsonl") == emu.file_path(made["id"]).read_bytes()
    assert s3_server.keys(bucket) == ["results/output.jsonl"]
    # The log names where the file landed, not the local copy it was staged in on the way.
    logs = task_logs()
    assert f"Stored Together file {made['id']} at {got}" in logs
    assert "Downloaded Together file" not in logs and "together-download-" not in logs


def test_download_into_an_s3_object_storage_path(together_conn, emu, s3_server, bucket):
    made = emu.create_synthetic_file(40_000)
    download(made["id"], ObjectStoragePath(url(bucket, "out.jsonl")))
    assert s3_server.get(bucket, "out.jsonl") == emu.file_path(made["id"]).read_bytes()


def test_a_cut_off_download_leaves_nothing_in_s3(no_retry, emu, s3_server, bucket):
    made = emu.create_synthetic_file(1_000_000)
    emu.set_faults({"path": f"^/v1/files/{made['id']}/content$", "kind": "truncate", "truncate_at": 70_000})
    with pytest.raises(IncompleteDownloadError, match="received 70000 of 1000000 bytes"):
        download(made["id"], url(bucket, "out/output.jsonl"))
    assert s3_server.keys(bucket) == [], "neither the final key nor a part key"


def test_a_download_replaces_an_older_object_whole(together_conn, emu, s3_server, bucket):
    s3_server.put(bucket, "out.jsonl", b"yesterday's results\n")
    made = emu.create_synthetic_file(30_000)
    download(made["id"], url(bucket, "out.jsonl"))
    assert s3_server.get(bucket, "out.jsonl") == emu.file_path(made["id"]).read_bytes()
    assert s3_server.keys(bucket) == ["out.jsonl"]


# ---- submit from S3 -------------------------------------------------------------------------------


def test_submit_from_s3_uploads_the_object_under_its_name(together_conn, emu, s3_server, bucket, tmp_path):
    source = write_requests(tmp_path / "local.jsonl", n=5)
    s3_server.put(bucket, "inputs/day-1.jsonl", source)
    batch = TogetherHook().get_batch(submit(url(bucket, "inputs/day-1.jsonl")))
    assert emu.file_path(batch.input_file_id).read_bytes() == source.read_bytes()
    assert TogetherHook().get_file(batch.input_file_id).filename.startswith("day-1.af-")


def test_submit_from_s3_streams_an_input_bigger_than_the_read_block(
    together_conn, emu, s3_server, bucket, tmp_path
):
    source = big_input(tmp_path / "big.jsonl", 3 * storage.READ_BLOCK)
    s3_server.put(bucket, "big.jsonl", source)
    batch = TogetherHook().get_batch(submit(ObjectStoragePath(url(bucket, "big.jsonl"))))
    assert emu.file_path(batch.input_file_id).read_bytes() == source.read_bytes()


def test_a_failed_upload_is_retried_from_the_first_byte_of_the_object(
    together_conn, emu, s3_server, bucket, tmp_path
):
    source = big_input(tmp_path / "in.jsonl", 2_000_000)
    s3_server.put(bucket, "in.jsonl", source)
    emu.set_faults({"method": "PUT", "path": "^/_emulator/uploads/", "kind": "status", "status": 503})
    batch = TogetherHook().get_batch(submit(url(bucket, "in.jsonl")))
    puts = emu.requests_log(method="PUT")
    assert [entry["status"] for entry in puts] == [503, 200]
    assert emu.file_path(batch.input_file_id).read_bytes() == source.read_bytes()


def test_the_upload_body_of_an_object_is_sent_with_its_length_not_chunked(s3_server, bucket, tmp_path):
    source = write_requests(tmp_path / "in.jsonl", n=3)
    s3_server.put(bucket, "in.jsonl", source)
    content = storage.upload_content(storage.input_file(url(bucket, "in.jsonl"), field="input_file_path"))
    assert not isinstance(content, str)
    with content.open() as handle:
        prepared = requests.Request(
            "PUT", "http://127.0.0.1:9/upload", data=_SizedBody(handle, content.size)
        ).prepare()
    assert prepared.headers["Content-Length"] == str(source.stat().st_size)
    assert "Transfer-Encoding" not in prepared.headers


def test_an_invalid_line_in_an_s3_input_is_named_before_any_upload(together_conn, emu, s3_server, bucket):
    lines = [{"custom_id": "a", "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}]
    body = "".join(json.dumps(line) + "\n" for line in lines) + '{"custom_id": "b"}\n'
    s3_server.put(bucket, "in.jsonl", body.encode())
    emu.clear_requests_log()
    with pytest.raises(AirflowFailException) as raised:
        submit(url(bucket, "in.jsonl"))
    assert f"{url(bucket, 'in.jsonl')}, line 2" in str(raised.value)
    assert "'body' is missing" in str(raised.value)
    assert emu.requests_log() == [], "nothing uploaded, nothing paid for"


# ---- the store's refusals: each fails the task at once, naming the URL and the fix ----------------


@pytest.fixture
def refused_conn(refusing_s3_server, monkeypatch):
    for key, value in refusing_s3_server.connection_env(STRICT_CONN).items():
        monkeypatch.setenv(key, value)
    _forget_filesystems()
    yield STRICT_CONN
    _forget_filesystems()


def test_a_missing_object_fails_the_submit_at_once(together_conn, emu, bucket):
    target = url(bucket, "inputs/never-written.jsonl")
    emu.clear_requests_log()
    with pytest.raises(AirflowFailException) as raised:
        submit(target)
    assert f"input_file_path={target!r}: no object at this URL" in str(raised.value)
    assert "check the key" in str(raised.value)
    assert emu.requests_log() == []


@pytest.mark.parametrize("operator", ["submit", "download"])
def test_a_bucket_that_does_not_exist_fails_at_once(together_conn, emu, bucket, operator):
    target = url(f"missing-{uuid.uuid4().hex[:8]}", "x/in.jsonl")
    with pytest.raises(AirflowFailException) as raised:
        if operator == "submit":
            submit(target)
        else:
            download(emu.create_synthetic_file(1_000)["id"], target)
    message = str(raised.value)
    assert f"={target!r}: the bucket" in message and "does not exist" in message
    assert "create it or correct the URL" in message


@pytest.mark.parametrize("operator", ["submit", "download"])
def test_a_connection_that_does_not_exist_fails_at_once(airflow_db, together_conn, emu, bucket, operator):
    # airflow_db: past the env vars the lookup reaches the metadata DB, which must exist (Airflow 2).
    target = url(bucket, "in.jsonl", conn="no_such_connection")
    emu.clear_requests_log()
    with pytest.raises(AirflowFailException) as raised:
        if operator == "submit":
            submit(target)
        else:
            download("file-123", target)
    message = str(raised.value)
    assert f"={target!r}: the Airflow connection 'no_such_connection'" in message
    assert "AIRFLOW_CONN_NO_SUCH_CONNECTION" in message
    assert emu.requests_log() == [], "refused before anything is downloaded or uploaded"


@pytest.mark.parametrize("operator", ["submit", "download"])
def test_credentials_the_store_refuses_fail_at_once(together_conn, emu, refused_conn, operator):
    target = url("inputs", "in.jsonl", conn=refused_conn)
    with pytest.raises(AirflowFailException) as raised:
        if operator == "submit":
            submit(target)
        else:
            download(emu.create_synthetic_file(1_000)["id"], target)
    message = str(raised.value)
    assert f"={target!r}: the store refused access (403)" in message
    assert f"connection {refused_conn!r}" in message
    assert "testing-secret-key" not in message


@pytest.mark.parametrize("operator", ["submit", "download"])
def test_an_unsupported_scheme_fails_at_once(together_conn, emu, operator):
    target = "nosuchfs://bucket/in.jsonl"
    with pytest.raises(AirflowFailException, match=r"='nosuchfs://bucket/in\.jsonl': no filesystem"):
        if operator == "submit":
            submit(target)
        else:
            download("file-123", target)


def test_a_folder_is_not_an_input(together_conn, emu, s3_server, bucket):
    s3_server.put(bucket, "day/one.jsonl", b"{}\n")
    with pytest.raises(AirflowFailException, match="this is a folder, not an object"):
        submit(url(bucket, "day"))


# ---- results landed in S3 -------------------------------------------------------------------------


def test_batch_results_land_in_s3_and_read_back_through_object_storage_path(
    together_conn, s3_server, bucket, tmp_path
):
    from together_provider.operators.results import BatchResultsOperator

    hook = TogetherHook()
    src = write_requests(
        tmp_path / "in.jsonl",
        n=2,
        extra_lines=[
            {
                "custom_id": "gone",
                "body": {"model": "emulator/request-missing", "messages": [{"role": "user"}]},
            }
        ],
    )
    batch = wait_terminal(hook, hook.create_batch(hook.upload_file(src).id).id)
    target = url(bucket, "x/results.jsonl")
    manifest = BatchResultsOperator(task_id="results", batch_id=batch.id, result_path=target).execute(
        {"ti": RecordingTI()}
    )
    assert manifest["result_uri"] == target
    assert manifest["counts"] == {"succeeded": 2, "errored": 0, "missing": 1, "total": 3}
    with ObjectStoragePath(manifest["result_uri"]).open("r") as rows:
        # readline, not iteration: 2.11's handle (airflow.io.path.TrackingFileWrapper) has no __iter__.
        landed = {row["custom_id"]: row["status"] for row in map(json.loads, iter(rows.readline, ""))}
    assert landed == {"r0": "succeeded", "r1": "succeeded", "gone": "missing"}
    assert s3_server.keys(bucket) == ["x/results.jsonl"], "no temporary key left beside the results"


def test_a_table_repaired_in_s3_is_read_back_from_the_store_each_round(
    together_conn, s3_server, bucket, tmp_path
):
    """The round is merged into the table landed in S3, read back a row group at a time from the store."""
    pq = pytest.importorskip(
        "pyarrow.parquet", reason="pyarrow is not installed (the parquet extra brings it)"
    )
    from together_provider.operators.results import BatchResultsOperator

    hook = TogetherHook()
    flaky = f"{uuid.uuid4().hex[:6]}-flaky"
    src = write_requests(
        tmp_path / "in.jsonl",
        n=2,
        extra_lines=[
            {"custom_id": flaky, "body": {"model": "emulator/request-flaky", "messages": [{"role": "user"}]}}
        ],
    )
    batch = wait_terminal(hook, hook.create_batch(hook.upload_file(src).id).id)
    target = url(bucket, "t/rows.parquet")
    manifest = BatchResultsOperator(
        task_id="results",
        batch_id=batch.id,
        result_path=target,
        result_format="parquet",
        retry_failed_requests=1,
        deferrable=False,
        poll_interval=0.2,
    ).execute({"ti": RecordingTI()})
    assert manifest["result_uri"] == target and manifest["format"] == "parquet"
    assert manifest["counts"] == {"succeeded": 3, "errored": 0, "missing": 0, "total": 3}
    rows = {
        r["custom_id"]: r
        for r in pq.read_table(io.BytesIO(s3_server.get(bucket, "t/rows.parquet"))).to_pylist()
    }
    assert {cid: (r["status"], r["round"]) for cid, r in rows.items()} == {
        "r0": ("succeeded", 0),
        "r1": ("succeeded", 0),
        flaky: ("succeeded", 1),
    }
    assert s3_server.keys(bucket) == ["t/rows.parquet"], "no temporary key left beside the table"
