"""SubmitBatchOperator(split=True) in DAG runs (dag.test()): the list of batch ids travels through XCom
as the return value and as ``batch_ids``; a try that died halfway, or after every part, is retried by
Airflow and the retry re-attaches instead of paying twice."""

from __future__ import annotations

import json
import uuid

import pytest

from together_provider._compat import AIRFLOW_V_3_3_PLUS
from together_provider.hooks.together import TogetherHook

from ..conftest import load_dag


@pytest.fixture
def limits(emu):
    emu.set_limits(max_requests_per_batch=3)
    yield
    emu.set_limits(max_requests_per_batch=50_000)


def requests_file(path, n):
    tag = uuid.uuid4().hex  # content no other test uploads: the emulator reuses a file of the same hash
    with open(path, "w") as handle:
        for i in range(n):
            body = {"model": "split/model", "messages": [{"role": "user", "content": f"{tag} {i}"}]}
            handle.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
    return path


def run(airflow_db, dag_id, src, tmp_path):
    report = tmp_path / f"{dag_id}.json"
    dag = load_dag(airflow_db, "together_split.py", dag_id)
    dag_run = dag.test(run_conf={"input": str(src), "report": str(report)})
    submit = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "submit")
    state = str(getattr(submit.state, "value", submit.state))
    return submit.try_number, state, json.loads(report.read_text())


def batches_from(stem):
    hook = TogetherHook()
    files = {f.id: f.filename for f in hook.list_files() if (f.filename or "").startswith(stem + ".af-")}
    return {b.id: files[b.input_file_id] for b in hook.list_batches() if b.input_file_id in files}


def created(emu):
    return [e for e in emu.requests_log(method="POST", path="/v1/batches") if e["status"] == 201]


def test_a_try_dying_after_part_two_of_four_is_retried_into_parts_three_and_four(
    airflow_db, together_conn, emu, limits, tmp_path
):
    src = requests_file(tmp_path / "split_dag.jsonl", 12)
    emu.set_faults(
        {"method": "POST", "path": "^/v1/batches$", "kind": "status", "status": 503, "after": 2, "times": 1}
    )
    tries, state, got = run(airflow_db, "together_split", src, tmp_path)
    assert (tries, state) == (2, "success")
    made = batches_from("split_dag")
    assert len(made) == 4 and len(created(emu)) == 4, "two by the first try, two by the retry"
    assert got["returned"] == got["batch_ids"] and got["batch_id"] is None
    assert [made[i].split("-p")[1][:8] for i in got["returned"]] == [
        "001of004",
        "002of004",
        "003of004",
        "004of004",
    ]


def test_a_try_dying_after_every_part_returns_the_same_batches_on_retry(
    airflow_db, together_conn, emu, limits, tmp_path
):
    src = requests_file(tmp_path / "split_stored_dag.jsonl", 7)
    tries, state, got = run(airflow_db, "together_split_crash_after_store", src, tmp_path)
    assert (tries, state) == (2, "success")
    if AIRFLOW_V_3_3_PLUS:
        # The task state store had the list: the retry listed nothing (older Airflow looks on the server).
        assert emu.requests_log(method="GET", path="/v1/files") == []
        assert emu.requests_log(method="GET", path="/v1/batches") == []
    made = batches_from("split_stored_dag")
    assert len(made) == 3 and len(created(emu)) == 3, "the retry created nothing"
    assert got["returned"] == got["batch_ids"] and set(got["returned"]) == set(made)
