"""Nothing submitted twice: retries, clears and worker crashes reuse the batch; a new run does not."""

from __future__ import annotations

import json

import pytest

from together_provider.client.resubmission import run_key, upload_name
from together_provider.hooks.together import TogetherHook

from ..conftest import load_dag
from ..helpers import write_requests


def batches_from(hook: TogetherHook, file_stem: str) -> list:
    files = {f.id for f in hook.list_files() if (f.filename or "").startswith(file_stem + ".af-")}
    return [b for b in hook.list_batches() if b.input_file_id in files]


def run(airflow_db, dag_id, src, tmp_path):
    report = tmp_path / f"{dag_id}.json"
    dag = load_dag(airflow_db, "together_resubmission.py", dag_id)
    dag_run = dag.test(run_conf={"input": str(src), "report": str(report)})
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    return dag_run, tis, json.loads(report.read_text()) if report.exists() else None


def test_crash_after_create_then_retry_leaves_one_batch(airflow_db, together_conn, tmp_path):
    src = write_requests(tmp_path / "crashy.jsonl", n=2, model="crash/model")
    hook = TogetherHook()
    _, tis, got = run(airflow_db, "together_crash_after_create", src, tmp_path)
    assert (
        tis["submit"].try_number == 2
        and str(getattr(tis["submit"].state, "value", tis["submit"].state)) == "success"
    )
    made = batches_from(hook, "crashy")
    assert len(made) == 1, [b.id for b in made]
    assert got == {"batch_id": made[0].id, "status": "COMPLETED"}


def test_crash_after_the_id_was_stored_resumes_from_the_store(airflow_db, together_conn, emu, tmp_path):
    src = write_requests(tmp_path / "stored.jsonl", n=2, model="store/model")
    _, tis, got = run(airflow_db, "together_crash_after_store", src, tmp_path)
    made = batches_from(TogetherHook(), "stored")
    assert len(made) == 1 and got == {"batch_id": made[0].id, "status": "COMPLETED"}
    assert tis["submit"].try_number == 2


def test_force_new_submits_again(airflow_db, together_conn, tmp_path):
    src = write_requests(tmp_path / "forced.jsonl", n=2, model="force/model")
    _, _, got = run(airflow_db, "together_crash_after_create_force_new", src, tmp_path)
    made = batches_from(TogetherHook(), "forced")
    assert len(made) == 2
    assert got["batch_id"] in {b.id for b in made} and got["status"] == "COMPLETED"


def test_a_new_dag_run_submits_a_new_batch(airflow_db, together_conn, tmp_path):
    src = write_requests(tmp_path / "twice.jsonl", n=1, model="rerun/model")
    run(airflow_db, "together_crash_after_create", src, tmp_path)
    run(airflow_db, "together_crash_after_create", src, tmp_path)
    assert len(batches_from(TogetherHook(), "twice")) == 2


def test_lost_create_answer_is_found_by_the_retry(airflow_db, together_conn, emu, tmp_path):
    """Together created the batch but its answer never arrived (a 500 after the fact): the create is not
    retried blindly, the task fails, and its retry finds the batch instead of paying for another."""
    src = write_requests(tmp_path / "lost.jsonl", n=1, model="lost/model")
    emu.set_faults(
        {
            "method": "POST",
            "path": "^/v1/batches$",
            "kind": "status",
            "status": 500,
            "phase": "after",
            "times": 1,
        }
    )
    dag = load_dag(airflow_db, "together_outcomes.py", "together_plain_deferrable")
    dag_run = dag.test(run_conf={"input": str(src), "report": str(tmp_path / "r.json")})
    submit = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "submit")
    assert submit.try_number == 2 and str(getattr(submit.state, "value", submit.state)) == "success"
    assert len(batches_from(TogetherHook(), "lost")) == 1
    assert len(emu.requests_log(method="POST", path="/v1/batches")) == 1


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        (("d", "r1", "t", -1), ("d", "r1", "t", -1), True),
        (("d", "r1", "t", -1), ("d", "r2", "t", -1), False),
        (("d", "r1", "t", 0), ("d", "r1", "t", 1), False),
        (("d", "r1", "t", None), ("d", "r1", "t", -1), True),
    ],
)
def test_run_key_depends_on_identity_not_try(a, b, same):
    assert (run_key(*a) == run_key(*b)) is same


def test_upload_name_carries_key_and_checksum():
    name = upload_name("/data/my requests.jsonl", "0123456789abcdef", "f" * 64)
    assert name == "my requests.af-0123456789abcdef-ffffffffffff.jsonl"
