"""dag.test() runs against the emulator: every outcome, deferrable (trigger run in-process) and not."""

from __future__ import annotations

import json
import threading
import time

import pytest

from together_provider.hooks.together import TogetherHook

from ..conftest import load_dag
from ..helpers import stored_xcoms, write_requests

MODES = ["deferrable", "poke"]


@pytest.fixture
def run_dag(airflow_db, together_conn, tmp_path):
    def run(dag_id, model="test/model", n=3, extra_lines=(), file="together_outcomes.py"):
        src = write_requests(tmp_path / f"{dag_id}.jsonl", n=n, model=model, extra_lines=extra_lines)
        report = tmp_path / f"{dag_id}.report.json"
        dag = load_dag(airflow_db, file, dag_id)
        dag_run = dag.test(run_conf={"input": str(src), "report": str(report)})
        tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
        got = json.loads(report.read_text()) if report.exists() else None
        return dag_run, tis, got

    run.dags_folder = airflow_db
    return run


def state(ti):
    return str(getattr(ti.state, "value", ti.state))


@pytest.mark.parametrize("mode", [*MODES, "reschedule"])
def test_completed_downstream_gets_file_ids(run_dag, mode):
    dag_run, tis, got = run_dag(f"together_plain_{mode}")
    assert state(tis["wait"]) == "success" and state(dag_run) == "success"
    assert got["status"] == "COMPLETED" and got["output_file_id"] and got["error_file_id"] is None
    assert got["return_value"]["output_file_id"] == got["output_file_id"]
    assert got["batch_id"] == got["return_value"]["batch_id"]
    assert got["batch_url"] is None, "no link to Together's console for a batch of the emulator"


def test_bad_input_file_fails_fast_without_upload(run_dag, emu, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"custom_id": "a", "body": {"model": "m", "messages": [1]}}\n{"custom_id": "a"\n')
    dag = load_dag(run_dag.dags_folder, "together_outcomes.py", "together_plain_poke")
    dag_run = dag.test(run_conf={"input": str(bad), "report": str(tmp_path / "r.json")})
    submit = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "submit")
    assert state(submit) == "failed" and submit.try_number == 1
    assert emu.requests_log(method="POST") == []


REQUEST_ERROR = {
    "custom_id": "broken",
    "body": {"model": "emulator/request-error", "messages": [{"role": "user", "content": "x"}]},
}


@pytest.mark.parametrize("mode", MODES)
def test_completed_with_request_errors(run_dag, mode):
    _dag_run, tis, got = run_dag(f"together_plain_{mode}", extra_lines=[REQUEST_ERROR])
    assert state(tis["wait"]) == "success"
    assert got["output_file_id"] and got["error_file_id"]


@pytest.mark.parametrize("mode", MODES)
def test_request_errors_fail_when_asked(run_dag, mode):
    _dag_run, tis, got = run_dag(f"together_strict_{mode}", extra_lines=[REQUEST_ERROR])
    assert state(tis["wait"]) == "failed" and tis["wait"].try_number == 1
    assert got["error_file_id"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("model", "status"), [("emulator/batch-fail", "FAILED"), ("emulator/batch-expire", "EXPIRED")]
)
def test_failed_and_expired_fail_without_retries(run_dag, mode, model, status, task_logs):
    _dag_run, tis, got = run_dag(f"together_plain_{mode}", model=model)
    assert state(tis["wait"]) == "failed"
    assert tis["wait"].try_number == 1 and tis["wait"].max_tries == 2
    assert got["status"] == status
    assert f"Together batch {got['batch_id']} ended {status}: emulator:" in task_logs()


@pytest.mark.parametrize("mode", MODES)
def test_cancelled_fails_without_retries(run_dag, emu, mode):
    """Someone cancels the batch (in Together's console, say) while the sensor waits."""
    hook = TogetherHook()
    known = {b.id for b in hook.list_batches()}
    stop = threading.Event()

    def cancel_when_seen():
        while not stop.is_set():
            fresh = [b for b in hook.list_batches() if b.id not in known]
            if fresh:
                time.sleep(0.5)
                hook.cancel_batch(fresh[0].id)
                return
            time.sleep(0.1)

    canceller = threading.Thread(target=cancel_when_seen, daemon=True)
    canceller.start()
    try:
        _dag_run, tis, got = run_dag(f"together_plain_{mode}", model="emulator/never-finish")
    finally:
        stop.set()
        canceller.join(5)
    assert state(tis["wait"]) == "failed" and tis["wait"].try_number == 1
    assert got["status"] == "CANCELLED"


@pytest.mark.parametrize("mode", MODES)
def test_soft_fail_skips(run_dag, mode):
    # The words of the skip: test_error_paths.py::test_soft_fail_skips_with_the_failure_words.
    _dag_run, tis, _got = run_dag(f"together_soft_{mode}", model="emulator/batch-fail")
    assert state(tis["wait"]) == "skipped" and tis["wait"].try_number == 1


@pytest.mark.parametrize("mode", MODES)
def test_timeout(run_dag, mode, task_logs):
    _dag_run, tis, _got = run_dag(f"together_timeout_{mode}", model="emulator/never-finish")
    assert state(tis["wait"]) == "failed"
    assert "timed out" in task_logs().lower()


@pytest.mark.parametrize("mode", MODES)
def test_submit_and_wait_same_outcomes(run_dag, mode):
    _, tis, got = run_dag(f"together_submit_and_wait_{mode}")
    assert state(tis["wait"]) == "success"
    assert got["status"] == "COMPLETED" and got["output_file_id"] and got["return_value"] == got["batch_id"]
    _, tis, got = run_dag(f"together_submit_and_wait_{mode}", model="emulator/batch-expire")
    assert state(tis["wait"]) == "failed" and tis["wait"].try_number == 1 and got["status"] == "EXPIRED"


def return_value(dag_run, task_id):
    """A task's return value as the metadata DB holds it (JSON on every supported Airflow)."""
    value = stored_xcoms(dag_run.dag_id, dag_run.run_id, task_id).get((-1, "return_value"))
    assert value is not None, f"{task_id} returned nothing"
    return value


def test_example_dag_end_to_end(airflow_db, together_conn, monkeypatch, tmp_path, task_logs):
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", tmp_path.as_uri())
    dag = load_dag(airflow_db, "example_together_batch.py", "example_together_batch")
    dag_run = dag.test()
    assert {ti.task_id: state(ti) for ti in dag_run.get_task_instances()} == {
        "submit_batch": "success",
        "wait_for_batch": "success",
        "batch_results": "success",
        "summarize": "success",
    }
    (landed,) = tmp_path.glob("*/results.jsonl")
    rows = [json.loads(line) for line in landed.open()]
    assert [row["status"] for row in rows] == ["succeeded"] * 6
    manifest = return_value(dag_run, "batch_results")
    six = {"succeeded": 6, "errored": 0, "missing": 0, "total": 6}
    assert manifest["counts"] == six and manifest["status"] == "COMPLETED"
    assert manifest["result_uri"].endswith(f"{landed.parent.name}/results.jsonl")
    # What summarize counted is what it read back from the landed rows, not the manifest's numbers.
    summary = return_value(dag_run, "summarize")
    assert summary["counts"] == six and summary["result_uri"] == manifest["result_uri"]
    out = task_logs()
    assert "Together batch results: 6 answers, 0 failed requests, 0 missing" in out
    # Three of the six answers are printed, and the log says they are three of six.
    assert (
        "Together batch answers, the first 3 of 6: question-1: Emulated answer to: What is the capital" in out
    )
    assert "question-3: " in out and "question-4: " not in out
    assert "Together batch failed requests" not in out
    # batch_results merges temporary copies of the batch's files: the log names only where rows landed.
    assert "Downloaded Together file" not in out and "together-results-" not in out


def test_example_dag_lands_results_in_s3(airflow_db, together_conn, monkeypatch, tmp_path, task_logs):
    """TOGETHER_EXAMPLE_RESULTS_URL in S3 (moto's server on loopback): the rows land there and summarize
    reads them back from there."""
    for module, why in (("moto.server", "moto[server]"), ("s3fs", "airflow-provider-together[s3]")):
        pytest.importorskip(module, reason=f"{why} is not installed")
    pytest.importorskip("airflow.providers.amazon", reason="airflow-provider-together[s3] is not installed")
    from ..s3_server import S3Server

    with S3Server(log=tmp_path / "moto.log") as s3:
        s3.create_bucket("example")
        for name, value in s3.connection_env("example_s3").items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
        monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", "s3://example_s3@example/runs")
        dag = load_dag(airflow_db, "example_together_batch.py", "example_together_batch")
        dag_run = dag.test()
        assert state(dag_run) == "success"
        (key,) = s3.keys("example")
        rows = [json.loads(line) for line in s3.get("example", key).splitlines()]
    assert key.startswith("runs/") and key.endswith("/results.jsonl")
    assert [row["status"] for row in rows] == ["succeeded"] * 6
    manifest = return_value(dag_run, "batch_results")
    summary = return_value(dag_run, "summarize")
    assert manifest["result_uri"] == summary["result_uri"] == f"s3://example_s3@example/{key}"
    assert summary["counts"] == {"succeeded": 6, "errored": 0, "missing": 0, "total": 6}
    assert f"read 6 rows from s3://example_s3@example/{key}" in task_logs()


def test_example_dag_counts_what_it_reads(airflow_db, together_conn, monkeypatch, tmp_path, capsys):
    """summarize counts the rows it reads: rows the store holds that the manifest does not count show."""
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", tmp_path.as_uri())
    dag = load_dag(airflow_db, "example_together_batch.py", "example_together_batch")
    summarize = dag.get_task("summarize")
    landed = tmp_path / "elsewhere.jsonl"
    landed.write_text(
        json.dumps({"custom_id": "x", "status": "missing", "response": None, "error": None}) + "\n"
    )
    manifest = {"result_uri": landed.as_uri(), "counts": {}, "usage": None}
    summary = summarize.python_callable(manifest)
    assert summary["counts"] == {"succeeded": 0, "errored": 0, "missing": 1, "total": 1}
    printed = capsys.readouterr().out
    assert "Together batch failed requests, all 1:\n  failed x (missing): None\n" in printed
    assert "Together batch answers" not in printed


def test_mapped_example_dag_end_to_end(airflow_db, together_conn, emu, monkeypatch, tmp_path, task_logs):
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("TOGETHER_EXAMPLE_OUTPUT_DIR", str(tmp_path))
    dag = load_dag(airflow_db, "example_together_batch_mapped.py", "example_together_batch_mapped")
    dag_run = dag.test()
    tis = dag_run.get_task_instances()
    assert {(ti.task_id, ti.map_index): state(ti) for ti in tis} == {
        ("list_input_files", -1): "success",
        **{
            (task_id, i): "success"
            for task_id in ("submit_batch", "wait_for_batch", "download_output")
            for i in range(3)
        },
        ("summarize", -1): "success",
    }
    assert len(emu.requests_log(method="POST", path="/v1/batches")) == 3
    out = task_logs()
    assert "Together mapped batches: 3 batches, 6 answers" in out
    assert "XCom not found" not in out
    outputs = sorted(path.name for path in tmp_path.glob("*/output-*.jsonl"))
    assert outputs == ["output-0.jsonl", "output-1.jsonl", "output-2.jsonl"]
    custom_ids = {
        json.loads(line)["custom_id"] for path in tmp_path.glob("*/output-*.jsonl") for line in path.open()
    }
    assert custom_ids == {f"part-{part}-question-{i}" for part in (1, 2, 3) for i in (1, 2)}


@pytest.mark.parametrize("outcome", ["fail", "expire"])
def test_failure_example_dag(airflow_db, together_conn, monkeypatch, outcome):
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    dag = load_dag(airflow_db, "example_together_batch_failures.py", "example_together_batch_failures")
    dag_run = dag.test(run_conf={"outcome": outcome})
    states = {ti.task_id: state(ti) for ti in dag_run.get_task_instances()}
    assert states == {
        "make_input": "success",
        "submit_batch": "success",
        "wait_strict": "failed",
        "wait_soft": "skipped",
        "report_partial_results": "success",
        "fail_run_if_batch_failed": "failed",
    }
    assert state(dag_run) == "failed"


def test_repair_example_dag(airflow_db, together_conn, monkeypatch, tmp_path):
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", str(tmp_path / "landed"))
    dag = load_dag(airflow_db, "example_together_batch_repair.py", "example_together_batch_repair")
    dag_run = dag.test(run_conf={"emulated": True})
    states = {ti.task_id: state(ti) for ti in dag_run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    summary = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "summarize").xcom_pull(
        task_ids="summarize"
    )
    assert summary == {"succeeded": 3, "errored": 1, "missing": 0, "total": 4}


def test_cancel_example_dag(airflow_db, together_conn, emu, task_logs):
    """The manual's GetBatchOperator and CancelBatchOperator example: the batch is looked up while it
    validates (the emulator held there) and cancelled."""
    emu.set_clock(validating_seconds=60)
    dag = load_dag(airflow_db, "example_together_batch_cancel.py", "example_together_batch_cancel")
    dag_run = dag.test()
    assert {ti.task_id: state(ti) for ti in dag_run.get_task_instances()} == {
        "submit_batch": "success",
        "get_batch": "success",
        "cancel_batch": "success",
        "report": "success",
    }
    got = return_value(dag_run, "report")
    assert got == {"batch_id": got["batch_id"], "seen": "VALIDATING", "after_cancel": "CANCELLED"}
    assert f"Together batch {got['batch_id']} was VALIDATING when looked up" in task_logs()
    assert len(emu.requests_log(method="POST", path=f"/v1/batches/{got['batch_id']}/cancel")) == 1
