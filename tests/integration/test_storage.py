"""Downloads and submits through Airflow's ObjectStoragePath, over real HTTP to the emulator: file:// URLs
and ObjectStoragePath objects on the local filesystem, a non-local store (fsspec's in-memory filesystem,
attached to Airflow the way a provider attaches S3), cut-off downloads and schemes with nothing installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid

import pytest

from together_provider._compat import AIRFLOW_V_3_0_PLUS, AirflowFailException, ObjectStoragePath
from together_provider.client.errors import IncompleteDownloadError
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import DownloadBatchFileOperator, SubmitBatchOperator

from ..conftest import connection_uri_env
from ..helpers import RecordingTI, write_requests


@pytest.fixture
def no_retry(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))
    return "together_default"


@pytest.fixture
def memory_store():
    """A folder in fsspec's in-memory filesystem, attached to Airflow under the ``memory`` scheme (no
    Airflow provider registers it, as the amazon provider registers ``s3``); emptied afterwards."""
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    importlib.import_module("airflow.sdk.io" if AIRFLOW_V_3_0_PLUS else "airflow.io.store").attach(
        "memory", fs=fs
    )
    folder = f"/store-{uuid.uuid4().hex}"
    yield fs, folder
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def download(file_id, path):
    return DownloadBatchFileOperator(task_id="download", file_id=file_id, path=path).execute(
        {"ti": RecordingTI()}
    )


def test_download_to_a_file_url_writes_the_local_path(together_conn, emu, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = emu.create_synthetic_file(200_000)
    target = tmp_path / "out" / "result.jsonl"
    got = download(made["id"], f"file://{target}")
    assert got == str(target)
    assert target.read_bytes() == emu.file_path(made["id"]).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "no folder named 'file:' in the cwd"


def test_download_to_a_plain_path_object_keeps_the_local_path(together_conn, emu, tmp_path):
    made = emu.create_synthetic_file(20_000)
    target = tmp_path / "plain.jsonl"
    assert download(made["id"], target) == str(target)
    assert target.read_bytes() == emu.file_path(made["id"]).read_bytes()


def test_download_to_a_local_object_storage_path(together_conn, emu, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made = emu.create_synthetic_file(50_000)
    target = tmp_path / "result.jsonl"
    got = download(made["id"], ObjectStoragePath(f"file://{target}"))
    assert got == str(target)
    assert target.read_bytes() == emu.file_path(made["id"]).read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["result.jsonl"]


def test_download_into_a_store_lands_the_content_and_no_temporary_key(together_conn, emu, memory_store):
    fs, folder = memory_store
    made = emu.create_synthetic_file(300_000)
    url = f"memory://{folder}/results/output.jsonl"
    got = download(made["id"], ObjectStoragePath(url))
    assert fs.cat_file(f"{folder}/results/output.jsonl") == emu.file_path(made["id"]).read_bytes()
    assert got.endswith(f"{folder}/results/output.jsonl")
    assert fs.ls(f"{folder}/results", detail=False) == [f"{folder}/results/output.jsonl"]


def test_a_cut_off_download_leaves_nothing_at_a_file_url(no_retry, emu, tmp_path):
    made = emu.create_synthetic_file(1_000_000)
    emu.set_faults({"path": f"^/v1/files/{made['id']}/content$", "kind": "truncate", "truncate_at": 70_000})
    with pytest.raises(IncompleteDownloadError, match="received 70000 of 1000000 bytes"):
        download(made["id"], f"file://{tmp_path}/out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_a_cut_off_download_leaves_nothing_in_the_store(no_retry, emu, memory_store):
    fs, folder = memory_store
    fs.mkdir(folder)
    made = emu.create_synthetic_file(1_000_000)
    emu.set_faults({"path": f"^/v1/files/{made['id']}/content$", "kind": "truncate", "truncate_at": 70_000})
    with pytest.raises(IncompleteDownloadError, match="received 70000 of 1000000 bytes"):
        download(made["id"], f"memory://{folder}/out.jsonl")
    assert not fs.exists(f"{folder}/out.jsonl")
    assert fs.ls(folder, detail=False) == []


SCHEMES = [
    (
        "s3://aws_default@bucket/out.jsonl",
        "apache-airflow-providers-amazon[s3fs]",
        "airflow.providers.amazon",
    ),
    ("gs://bucket/out.jsonl", "apache-airflow-providers-google", "airflow.providers.google"),
    ("abfs://container/out.jsonl", "apache-airflow-providers-microsoft-azure", "airflow.providers.microsoft"),
]


@pytest.mark.parametrize(("url", "package", "module"), SCHEMES)
def test_an_uninstalled_scheme_fails_at_once_naming_the_package(together_conn, emu, url, package, module):
    if importlib.util.find_spec(module) is not None:
        pytest.skip(f"{module} is installed here: the scheme is supported")
    made = emu.create_synthetic_file(1_000)
    emu.clear_requests_log()
    with pytest.raises(AirflowFailException) as raised:
        download(made["id"], url)
    assert f"path={url!r}" in str(raised.value) and f"install {package}" in str(raised.value)
    assert emu.requests_log() == [], "refused before any download"


def test_an_unknown_scheme_fails_at_once_naming_the_url(together_conn, emu):
    with pytest.raises(AirflowFailException, match=r"path='nosuchfs://x/out.jsonl': no filesystem"):
        download("file-123", "nosuchfs://x/out.jsonl")


def test_a_file_url_with_a_host_is_refused(together_conn):
    with pytest.raises(AirflowFailException, match="three slashes"):
        download("file-123", "file://tmp/out.jsonl")


def submit(path):
    return SubmitBatchOperator(task_id="submit", input_file_path=path).execute({"ti": RecordingTI()})


@pytest.mark.parametrize("form", ["url", "object"])
def test_submit_from_a_local_url_or_object_storage_path(together_conn, emu, tmp_path, form):
    source = write_requests(tmp_path / "in.jsonl", n=2)
    url = f"file://{source}"
    batch_id = submit(url if form == "url" else ObjectStoragePath(url))
    batch = TogetherHook().get_batch(batch_id)
    assert emu.file_path(batch.input_file_id).read_bytes() == source.read_bytes()


def test_submit_from_a_store_uploads_the_object_under_its_name(together_conn, emu, memory_store, tmp_path):
    fs, folder = memory_store
    # Content no other test uploads: the emulator reuses a file of the same SHA-256 under its old name.
    unique = {
        "custom_id": uuid.uuid4().hex,
        "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
    }
    content = write_requests(tmp_path / "in.jsonl", n=3, extra_lines=[unique]).read_bytes()
    fs.pipe_file(f"{folder}/inputs/requests.jsonl", content)
    batch = TogetherHook().get_batch(submit(f"memory://{folder}/inputs/requests.jsonl"))
    assert emu.file_path(batch.input_file_id).read_bytes() == content
    assert TogetherHook().get_file(batch.input_file_id).filename.startswith("requests.af-")


def test_an_invalid_line_in_a_store_input_is_named_before_any_upload(together_conn, emu, memory_store):
    fs, folder = memory_store
    fs.pipe_file(f"{folder}/in.jsonl", b'{"custom_id": "a"}\n')
    emu.clear_requests_log()
    with pytest.raises(AirflowFailException, match=r"memory://.*in\.jsonl.*line 1.*'body' is missing"):
        submit(f"memory://{folder}/in.jsonl")
    assert emu.requests_log() == []


def test_a_missing_object_in_a_store_fails_at_once_naming_the_url(together_conn, emu, memory_store):
    fs, folder = memory_store
    fs.mkdir(folder)
    with pytest.raises(AirflowFailException, match=r"input_file_path='memory://.*nothing\.jsonl'.*no object"):
        submit(f"memory://{folder}/nothing.jsonl")
