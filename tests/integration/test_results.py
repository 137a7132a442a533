"""BatchResultsOperator and TogetherHook.iter_results over real HTTP to the emulator: every request landed as
one row (succeeded, errored, missing), the manifest, the request-error checks, partial batches, each form of
result_path, a write cut off midway, and dag.test() runs with a downstream task reading the manifest."""

from __future__ import annotations

import json
import uuid

import pytest

from together_provider._compat import AirflowFailException, ObjectStoragePath
from together_provider.client.errors import IncompleteDownloadError
from together_provider.hooks.together import TogetherHook
from together_provider.operators.results import BatchResultsOperator

from ..conftest import connection_uri_env, load_dag
from ..helpers import RecordingTI, wait_terminal, write_requests


def line(custom_id, model, text="x"):
    return {"custom_id": custom_id, "body": {"model": model, "messages": [{"role": "user", "content": text}]}}


MIXED = [
    line("err-1", "emulator/request-error"),
    line("gone-1", "emulator/request-missing"),
    line("err-2", "emulator/request-error"),
    line("gone-2", "emulator/request-missing"),
]


def finished_batch(tmp_path, n=3, model="test/model", extra_lines=()):
    hook = TogetherHook()
    src = write_requests(
        tmp_path / f"in-{uuid.uuid4().hex[:8]}.jsonl", n=n, model=model, extra_lines=extra_lines
    )
    batch = hook.create_batch(hook.upload_file(src).id)
    return wait_terminal(hook, batch.id)


def land(batch_id, result_path, **options):
    ti = RecordingTI()
    operator = BatchResultsOperator(task_id="results", batch_id=batch_id, result_path=result_path, **options)
    return operator.execute({"ti": ti}), ti


def read_rows(path):
    with open(path) as handle:
        return [json.loads(text) for text in handle]


def test_a_mixed_batch_lands_one_exact_row_per_request(together_conn, tmp_path):
    batch = finished_batch(tmp_path, n=3, extra_lines=MIXED)
    assert batch.status.value == "COMPLETED"
    target = tmp_path / "rows" / "results.jsonl"
    manifest, ti = land(batch.id, str(target))

    rows = read_rows(target)
    by_id = {row["custom_id"]: row for row in rows}
    assert len(rows) == len(by_id) == 7, "every custom_id exactly once"
    assert {cid: row["status"] for cid, row in by_id.items()} == {
        "r0": "succeeded",
        "r1": "succeeded",
        "r2": "succeeded",
        "err-1": "errored",
        "err-2": "errored",
        "gone-1": "missing",
        "gone-2": "missing",
    }
    for i in range(3):
        row = by_id[f"r{i}"]
        assert row["response"]["choices"][0]["message"]["content"] == f"Emulated answer to: question {i}"
        assert row["model"] == "test/model" and row["error"] is None
        assert (
            row["usage"]["total_tokens"] == row["usage"]["prompt_tokens"] + row["usage"]["completion_tokens"]
        )
    for cid in ("err-1", "err-2"):
        assert by_id[cid]["error"] == {"message": "emulator: request failed on purpose", "code": 400}
        assert by_id[cid]["response"] is None and by_id[cid]["usage"] is None
    for cid in ("gone-1", "gone-2"):
        assert by_id[cid] == {
            "custom_id": cid,
            "status": "missing",
            "response": None,
            "error": None,
            "usage": None,
            "model": "emulator/request-missing",
        }

    summed = {
        key: sum(row["usage"][key] for row in rows if row["usage"])
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    }
    assert summed["total_tokens"] > 0
    assert manifest == {
        "schema_version": 1,
        "batch_id": batch.id,
        "status": "COMPLETED",
        "result_uri": str(target),
        "counts": {"succeeded": 3, "errored": 2, "missing": 2, "total": 7},
        "usage": summed,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "format": "jsonl",
        "rows": 7,
        "usage_by_model": {"test/model": {**summed, "requests": 3, "cost": None}},
        "cost": None,
        "unpriced_models": ["test/model"],
        "batch_discount": 0.5,
    }
    assert ti.xcoms["manifest"] == manifest
    assert "batch_url" not in ti.xcoms, "no link to Together's console for a batch of the emulator"
    assert [p.name for p in target.parent.iterdir()] == ["results.jsonl"], "no temporary file left"


def test_the_log_names_where_rows_landed_not_the_temporary_copies(together_conn, tmp_path, task_logs):
    """The output, error and input files are fetched to temporary copies to be merged: those are no
    place a user's data lands, so they are not named at info level (the log said "Downloaded Together
    file ... to /tmp/together-results-.../content.jsonl" for each); the line that says where the rows
    landed remains."""
    batch = finished_batch(tmp_path, n=3, extra_lines=MIXED)
    assert batch.output_file_id and batch.error_file_id
    target = tmp_path / "rows" / "results.jsonl"
    task_logs()
    land(batch.id, str(target))
    logs = task_logs()
    assert f"Landed 7 rows of Together batch {batch.id} (COMPLETED) at {target}" in logs
    assert "Downloaded Together file" not in logs
    assert "together-results-" not in logs


def test_iter_results_yields_the_same_records(together_conn, tmp_path):
    batch = finished_batch(tmp_path, n=2, extra_lines=MIXED[:2])
    records = list(TogetherHook().iter_results(batch.id))
    assert sorted((r["custom_id"], r["status"]) for r in records) == [
        ("err-1", "errored"),
        ("gone-1", "missing"),
        ("r0", "succeeded"),
        ("r1", "succeeded"),
    ]
    assert [r["status"] for r in records][-1] == "missing", "missing ones come after both files"


@pytest.mark.parametrize(
    ("model", "status", "succeeded", "missing"),
    [("emulator/batch-fail", "FAILED", 2, 2), ("emulator/batch-expire", "EXPIRED", 3, 4)],
)
def test_failed_and_expired_batches_land_their_partial_results(
    together_conn, tmp_path, model, status, succeeded, missing
):
    if status == "FAILED":
        # Lines before the failing one are answered; it and the one after it never are.
        extra = [line("boom", model), line("after", "test/model")]
        batch = finished_batch(tmp_path, n=2, extra_lines=extra)
    else:
        batch = finished_batch(tmp_path, n=6, extra_lines=[line("late", model)])
    assert batch.status.value == status
    manifest, _ti = land(batch.id, str(tmp_path / "rows.jsonl"))
    rows = read_rows(tmp_path / "rows.jsonl")
    assert manifest["status"] == status
    assert manifest["counts"] == {
        "succeeded": succeeded,
        "errored": 0,
        "missing": missing,
        "total": len(rows),
    }
    assert len({row["custom_id"] for row in rows}) == len(rows) == succeeded + missing
    if status == "FAILED":
        assert {row["custom_id"] for row in rows if row["status"] == "missing"} == {"boom", "after"}


def test_a_cancelled_batch_with_no_files_lands_every_request_missing(running_batch, tmp_path):
    hook = TogetherHook()
    hook.cancel_batch(running_batch)
    manifest, _ti = land(running_batch, str(tmp_path / "rows.jsonl"))
    assert manifest["status"] == "CANCELLED" and manifest["output_file_id"] is None
    assert manifest["counts"] == {"succeeded": 0, "errored": 0, "missing": 1, "total": 1}
    assert read_rows(tmp_path / "rows.jsonl")[0]["model"] == "emulator/never-finish"


def test_a_running_batch_is_refused_and_nothing_lands(running_batch, tmp_path):
    target = tmp_path / "rows.jsonl"
    with pytest.raises(AirflowFailException) as raised:
        land(running_batch, str(target))
    message = str(raised.value)
    assert f"Together batch {running_batch} is" in message and "not finished" in message
    assert "BatchCompletionSensor" in message
    assert any(status in message for status in ("VALIDATING", "IN_PROGRESS"))
    assert list(tmp_path.iterdir()) == [tmp_path / "forever.jsonl"]


def test_iter_results_refuses_a_running_batch_naming_the_status(running_batch):
    with pytest.raises(ValueError, match=r"is (VALIDATING|IN_PROGRESS), not finished.*BatchCompletionSensor"):
        TogetherHook().iter_results(running_batch)


def test_fail_on_request_errors_fails_after_landing(together_conn, tmp_path):
    batch = finished_batch(tmp_path, n=2, extra_lines=MIXED[:2])
    target = tmp_path / "rows.jsonl"
    ti = RecordingTI()
    operator = BatchResultsOperator(
        task_id="results", batch_id=batch.id, result_path=str(target), fail_on_request_errors=True
    )
    with pytest.raises(AirflowFailException) as raised:
        operator.execute({"ti": ti})
    message = str(raised.value)
    assert "2 succeeded, 1 errored, 1 missing of 4" in message and "fail_on_request_errors=True" in message
    assert str(target) in message
    assert len(read_rows(target)) == 4, "the rows stay landed"
    assert ti.xcoms["manifest"]["counts"]["errored"] == 1, "the manifest is pushed before failing"


def test_fail_on_request_errors_passes_a_clean_batch(together_conn, tmp_path):
    batch = finished_batch(tmp_path, n=3)
    manifest, ti = land(batch.id, str(tmp_path / "rows.jsonl"), fail_on_request_errors=True)
    assert manifest["counts"] == {"succeeded": 3, "errored": 0, "missing": 0, "total": 3}
    assert ti.xcoms["manifest"] == manifest


def test_min_success_ratio_both_ways(together_conn, tmp_path):
    batch = finished_batch(tmp_path, n=3, extra_lines=MIXED[:1])  # 3 of 4 succeed
    manifest, _ti = land(batch.id, str(tmp_path / "ok.jsonl"), min_success_ratio=0.75)
    assert manifest["counts"]["succeeded"] == 3
    target = tmp_path / "low.jsonl"
    with pytest.raises(AirflowFailException) as raised:
        land(batch.id, str(target), min_success_ratio=0.8)
    assert "success ratio 0.7500 is below min_success_ratio=0.8" in str(raised.value)
    assert str(target) in str(raised.value) and len(read_rows(target)) == 4


@pytest.mark.parametrize("bad", [0, 1.01, -1, "half", True])
def test_a_bad_min_success_ratio_is_refused_when_the_dag_is_built(bad):
    with pytest.raises(ValueError, match="min_success_ratio="):
        BatchResultsOperator(
            task_id="results", batch_id="b", result_path="/tmp/x.jsonl", min_success_ratio=bad
        )


@pytest.mark.parametrize(("field", "value"), [("batch_id", ""), ("result_path", " ")])
def test_an_empty_batch_id_or_result_path_fails_at_once(together_conn, emu, field, value):
    options = {"batch_id": "b-1", "result_path": "/tmp/never.jsonl", field: value}
    with pytest.raises(AirflowFailException, match=field):
        BatchResultsOperator(task_id="results", **options).execute({"ti": RecordingTI()})
    assert emu.requests_log() == []


@pytest.mark.parametrize("form", ["file_url", "object_storage_path"])
def test_result_path_as_a_file_url_or_local_object_storage_path(together_conn, tmp_path, monkeypatch, form):
    monkeypatch.chdir(tmp_path)
    batch = finished_batch(tmp_path, n=2, extra_lines=MIXED[:1])
    target = tmp_path / "out" / "rows.jsonl"
    url = f"file://{target}"
    manifest, _ti = land(batch.id, url if form == "file_url" else ObjectStoragePath(url))
    assert manifest["result_uri"] == str(target)
    assert sorted(row["custom_id"] for row in read_rows(target)) == ["err-1", "r0", "r1"]
    assert not (tmp_path / "file:").exists()


def test_result_path_in_a_store(together_conn, tmp_path, memory_store):
    fs, folder = memory_store
    batch = finished_batch(tmp_path, n=2, extra_lines=MIXED[:2])
    manifest, _ti = land(batch.id, f"memory://{folder}/rows.jsonl")
    assert manifest["result_uri"].endswith(f"{folder}/rows.jsonl")
    rows = [json.loads(text) for text in fs.cat_file(f"{folder}/rows.jsonl").splitlines()]
    assert sorted(row["status"] for row in rows) == ["errored", "missing", "succeeded", "succeeded"]
    assert fs.ls(folder, detail=False) == [f"{folder}/rows.jsonl"], "no temporary key left"


def test_a_write_cut_off_midway_leaves_the_target_as_it_was(emu, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))
    batch = finished_batch(tmp_path, n=3, extra_lines=MIXED[:1])
    target = tmp_path / "out" / "rows.jsonl"
    target.parent.mkdir()
    target.write_text("earlier rows\n")
    # The output file's rows are written before the error file is fetched: its cut-off download is an
    # error in the middle of the write.
    emu.set_faults(
        {"path": f"^/v1/files/{batch.error_file_id}/content$", "kind": "truncate", "truncate_at": 10}
    )
    with pytest.raises(IncompleteDownloadError):
        land(batch.id, str(target))
    assert target.read_text() == "earlier rows\n"
    assert [p.name for p in target.parent.iterdir()] == ["rows.jsonl"], "no temporary file left"


def test_a_write_cut_off_midway_leaves_no_file(emu, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))
    batch = finished_batch(tmp_path, n=3, extra_lines=MIXED[:2])
    emu.set_faults(
        {"path": f"^/v1/files/{batch.input_file_id}/content$", "kind": "truncate", "truncate_at": 10}
    )
    out = tmp_path / "out"
    with pytest.raises(IncompleteDownloadError):
        land(batch.id, f"file://{out}/rows.jsonl")
    assert list(out.iterdir()) == []


# ---- dag.test(): the downstream task reads the manifest and the rows ------------------------------


@pytest.fixture
def run_results_dag(airflow_db, together_conn, tmp_path):
    def run(dag_id, extra_lines=()):
        src = write_requests(tmp_path / f"{dag_id}.jsonl", n=3, extra_lines=extra_lines)
        result, report = tmp_path / "landed" / f"{dag_id}.jsonl", tmp_path / f"{dag_id}.report.json"
        dag = load_dag(airflow_db, "together_results.py", dag_id)
        dag_run = dag.test(run_conf={"input": str(src), "result": f"file://{result}", "report": str(report)})
        tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
        return dag_run, tis, json.loads(report.read_text()), result

    return run


def state(ti):
    return str(getattr(ti.state, "value", ti.state))


def test_dag_lands_rows_and_returns_the_manifest(run_results_dag):
    dag_run, tis, got, result = run_results_dag("together_results_plain", extra_lines=MIXED[:2])
    assert state(tis["results"]) == "success" and state(dag_run) == "success"
    assert got["return_value"] == got["manifest"]
    assert got["manifest"]["counts"] == {"succeeded": 3, "errored": 1, "missing": 1, "total": 5}
    assert got["manifest"]["result_uri"] == str(result)
    assert sorted(row["custom_id"] for row in got["rows"]) == ["err-1", "gone-1", "r0", "r1", "r2"]


@pytest.mark.parametrize("dag_id", ["together_results_strict", "together_results_ratio"])
def test_dag_fails_at_once_and_the_downstream_still_reads_the_manifest(run_results_dag, dag_id):
    _dag_run, tis, got, result = run_results_dag(dag_id, extra_lines=MIXED[:1])
    assert state(tis["results"]) == "failed" and tis["results"].try_number == 1, "no retry"
    assert state(tis["report"]) == "success"
    assert got["manifest"]["counts"] == {"succeeded": 3, "errored": 1, "missing": 0, "total": 4}
    assert got["return_value"] is None
    assert len(got["rows"]) == 4 and result.exists()
