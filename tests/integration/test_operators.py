"""Get, cancel and download operators run against the emulator."""

from __future__ import annotations

import pytest

from together_provider._compat import AirflowFailException
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import (
    CancelBatchOperator,
    DownloadBatchFileOperator,
    GetBatchOperator,
)

from ..helpers import RecordingTI, wait_terminal, write_requests


@pytest.fixture
def hook(together_conn):
    return TogetherHook()


def test_get_pushes_status_and_files(hook, tmp_path):
    batch = wait_terminal(
        hook, hook.create_batch(hook.upload_file(write_requests(tmp_path / "g.jsonl")).id).id
    )
    ti = RecordingTI()
    got = GetBatchOperator(task_id="g", batch_id=batch.id).execute({"ti": ti})
    assert got["status"] == "COMPLETED" and got["output_file_id"] == batch.output_file_id
    assert ti.xcoms["status"] == "COMPLETED" and ti.xcoms["output_file_id"] == batch.output_file_id
    assert "batch_url" not in ti.xcoms, "no link to Together's console for a batch of the emulator"


def test_cancel_running_then_again_is_safe(hook, emu, tmp_path, task_logs):
    src = write_requests(tmp_path / "c.jsonl", n=1, model="emulator/never-finish")
    batch_id = hook.create_batch(hook.upload_file(src).id).id
    emu.clear_requests_log()
    cancel = CancelBatchOperator(task_id="c", batch_id=batch_id)
    assert cancel.execute({"ti": RecordingTI()})["status"] == "CANCELLED"
    assert f"Requested cancellation of Together batch {batch_id}" in task_logs()
    assert cancel.execute({"ti": RecordingTI()})["status"] == "CANCELLED"
    # The second cancel says it did nothing, and costs the refused POST and one GET, no more.
    logs = task_logs()
    assert f"Together batch {batch_id} had already ended CANCELLED; nothing to cancel" in logs
    # (Airflow 2's caplog keeps earlier lines: only what came after the first cancel counts.)
    assert logs.rfind("Requested cancellation") < logs.rfind("had already ended CANCELLED")
    calls = [(r["method"], r["path"], r["status"]) for r in emu.requests_log()]
    cancel_path = f"/v1/batches/{batch_id}/cancel"
    assert calls == [
        ("POST", cancel_path, 200),
        ("POST", cancel_path, 400),
        ("GET", f"/v1/batches/{batch_id}", 200),
    ]


def test_cancel_of_a_finished_batch_leaves_it(hook, tmp_path):
    done = wait_terminal(
        hook, hook.create_batch(hook.upload_file(write_requests(tmp_path / "d.jsonl")).id).id
    )
    got = CancelBatchOperator(task_id="c", batch_id=done.id).execute({"ti": RecordingTI()})
    assert got["status"] == "COMPLETED"


def test_download_writes_the_file(hook, emu, tmp_path):
    synthetic = emu.create_synthetic_file(10_000)
    path = DownloadBatchFileOperator(
        task_id="d", file_id=synthetic["id"], path=str(tmp_path / "o" / "x.jsonl")
    ).execute({})
    assert (tmp_path / "o" / "x.jsonl").stat().st_size == 10_000 and path.endswith("x.jsonl")


@pytest.mark.parametrize("empty", [None, "", "None", "  "])
def test_download_without_a_file_id(together_conn, empty, tmp_path):
    op = DownloadBatchFileOperator(task_id="d", file_id=empty, path=str(tmp_path / "x.jsonl"))
    with pytest.raises(AirflowFailException, match="file_id is empty"):
        op.execute({})
    allowed = DownloadBatchFileOperator(
        task_id="d", file_id=empty, path=str(tmp_path / "x.jsonl"), allow_missing=True
    )
    assert allowed.execute({}) is None


def test_a_wrong_key_on_submit_names_the_users_path(emu, monkeypatch, tmp_path):
    """The upload is recorded under a name with the run key added; the user knows only their path."""
    from together_provider.operators.batch import SubmitBatchOperator

    from ..conftest import connection_uri_env

    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_BADKEY", connection_uri_env(emu.url, key="tk-wrong"))
    src = write_requests(tmp_path / "good.jsonl")
    submit = SubmitBatchOperator(task_id="s", input_file_path=str(src), together_conn_id="together_badkey")
    with pytest.raises(AirflowFailException) as failed:
        submit.execute({"ti": RecordingTI()})
    message = str(failed.value)
    assert f"start upload of {src}: Together API answered 401" in message, message
    assert ".af-" not in message
