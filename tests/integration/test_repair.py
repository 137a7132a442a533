"""Repairing a batch's results over real HTTP to the emulator (BatchResultsOperator(retry_failed_requests)):
requests a retry can fix are sent again and merged, a permanent error never is, missing requests of an
EXPIRED batch come back, rounds run out, a failed round stops the repair naming it, a split input is
repaired across its parts, a worker lost mid-round leaves one batch for the round, a kill cancels the
round, and dag.test() runs the repair deferred."""

from __future__ import annotations

import json
import uuid

import pytest

from together_provider._compat import AirflowException, AirflowFailException, TaskDeferred
from together_provider.hooks.together import TogetherHook
from together_provider.operators.results import BatchResultsOperator

from ..conftest import load_dag
from ..helpers import RecordingTI, wait_terminal


def line(custom_id, model="test/model"):
    return {
        "custom_id": custom_id,
        "body": {"model": model, "messages": [{"role": "user", "content": custom_id}]},
    }


def batch_of(tmp_path, lines):
    """A finished batch of ``lines``; custom ids are made unique, since the emulator counts flaky answers
    per custom id for the whole session."""
    hook = TogetherHook()
    src = tmp_path / f"in-{uuid.uuid4().hex[:8]}.jsonl"
    src.write_text("".join(json.dumps(item) + "\n" for item in lines))
    return wait_terminal(hook, hook.create_batch(hook.upload_file(str(src)).id).id)


def ids(prefix, *names):
    return [f"{prefix}-{name}" for name in names]


def repair(batch_id, result_path, rounds=2, **options):
    ti = RecordingTI()
    operator = BatchResultsOperator(
        task_id="results",
        batch_id=batch_id,
        result_path=str(result_path),
        retry_failed_requests=rounds,
        deferrable=False,
        poll_interval=0.2,
        **options,
    )
    return operator.execute({"ti": ti}), ti


def rows_of(path):
    return {row["custom_id"]: row for row in map(json.loads, open(path))}


def input_ids(hook, batch_id):
    batch = hook.get_batch(batch_id)
    return [json.loads(raw)["custom_id"] for raw in hook.iter_file_lines(batch.input_file_id)]


def test_requests_a_retry_fixes_are_sent_again_and_merged(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    plain, flaky = ids(p, "a", "b"), ids(p, "f1", "f2")
    batch = batch_of(tmp_path, [line(c) for c in plain] + [line(c, "emulator/request-flaky") for c in flaky])
    manifest, ti = repair(batch.id, tmp_path / "rows.jsonl")
    rows = rows_of(tmp_path / "rows.jsonl")
    assert {c: r["status"] for c, r in rows.items()} == dict.fromkeys(plain + flaky, "succeeded")
    round_one = manifest["rounds"][1]
    assert [r["round"] for r in manifest["rounds"]] == [0, 1]
    assert round_one["requests"] == 2 and round_one["succeeded"] == 2
    assert {rows[c]["round"] for c in flaky} == {1} and {rows[c]["batch_id"] for c in flaky} == set(
        round_one["batch_ids"]
    )
    assert {rows[c]["round"] for c in plain} == {0} and {rows[c]["batch_id"] for c in plain} == {batch.id}
    assert manifest["counts"] == {"succeeded": 4, "errored": 0, "missing": 0, "total": 4}
    assert manifest["rounds"][0] == {
        "round": 0,
        "batch_ids": [batch.id],
        "requests": 4,
        "succeeded": 2,
        "errored": 2,
        "missing": 0,
        "cost": None,
    }
    assert ti.xcoms["manifest"] == manifest
    assert sorted(input_ids(TogetherHook(), round_one["batch_ids"][0])) == sorted(flaky)


def test_a_permanent_error_is_never_sent_again(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    (bad,), (flaky,) = ids(p, "bad"), ids(p, "flaky")
    batch = batch_of(
        tmp_path,
        [line(f"{p}-ok"), line(bad, "emulator/request-error"), line(flaky, "emulator/request-flaky")],
    )
    manifest, _ = repair(batch.id, tmp_path / "rows.jsonl", rounds=3)
    assert input_ids(TogetherHook(), manifest["rounds"][1]["batch_ids"][0]) == [flaky]
    assert len(manifest["rounds"]) == 2, "round 2 had nothing a retry could fix"
    rows = rows_of(tmp_path / "rows.jsonl")
    assert rows[bad]["status"] == "errored" and rows[bad]["round"] == 0 and rows[bad]["error"]["code"] == 400


def test_only_permanent_errors_make_no_round(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-ok"), line(f"{p}-bad", "emulator/request-error")])
    before = len(TogetherHook().list_batches())
    manifest, _ = repair(batch.id, tmp_path / "rows.jsonl")
    assert len(manifest["rounds"]) == 1 and len(TogetherHook().list_batches()) == before


def test_rounds_run_out_and_the_checks_apply_to_the_merged_rows(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    stubborn = f"{p}-stubborn"
    batch = batch_of(tmp_path, [line(f"{p}-ok"), line(stubborn, "emulator/request-flaky-3")])
    with pytest.raises(AirflowFailException, match="fail_on_request_errors=True allows none"):
        repair(batch.id, tmp_path / "rows.jsonl", rounds=2, fail_on_request_errors=True)
    rows = rows_of(tmp_path / "rows.jsonl")
    assert rows[stubborn]["status"] == "errored" and rows[stubborn]["round"] == 2
    # A third round would have fixed it: the repair stopped because the rounds ran out.
    manifest, _ = repair(batch.id, tmp_path / "again.jsonl", rounds=1)
    assert manifest["counts"]["succeeded"] == 2 and [r["round"] for r in manifest["rounds"]] == [0, 1]


def test_missing_requests_of_an_expired_batch_are_repaired(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    lines = [line(f"{p}-once", "emulator/batch-expire-once")] + [line(c) for c in ids(p, *"abcde")]
    batch = batch_of(tmp_path, lines)
    assert batch.raw_status == "EXPIRED"
    manifest, _ = repair(batch.id, tmp_path / "rows.jsonl", rounds=1)
    assert manifest["rounds"][0]["missing"] > 0
    assert manifest["counts"] == {"succeeded": 6, "errored": 0, "missing": 0, "total": 6}
    assert manifest["status"] == "EXPIRED", "the manifest's status is the batch's own"


def test_a_round_that_fails_stops_the_repair_naming_it_with_the_rows_landed(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-a"), line(f"{p}-boom", "emulator/batch-fail")])
    assert batch.raw_status == "FAILED"
    ti = RecordingTI()
    operator = BatchResultsOperator(
        task_id="results",
        batch_id=batch.id,
        result_path=str(tmp_path / "rows.jsonl"),
        retry_failed_requests=2,
        deferrable=False,
        poll_interval=0.2,
    )
    with pytest.raises(AirflowFailException, match=r"repair round 1 of 2: Together batch \S+ ended FAILED"):
        operator.execute({"ti": ti})
    assert [r["round"] for r in ti.xcoms["manifest"]["rounds"]] == [0, 1]
    assert rows_of(tmp_path / "rows.jsonl")[f"{p}-a"]["status"] == "succeeded"


def test_a_split_input_is_repaired_across_its_parts(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    first = batch_of(tmp_path, [line(f"{p}-a"), line(f"{p}-f1", "emulator/request-flaky")])
    second = batch_of(tmp_path, [line(f"{p}-b"), line(f"{p}-f2", "emulator/request-flaky")])
    manifest, _ = repair([first.id, second.id], tmp_path / "rows.jsonl", rounds=1)
    assert manifest["batch_ids"] == [first.id, second.id] and manifest["schema_version"] == 2
    round_batch = manifest["rounds"][1]["batch_ids"]
    assert len(round_batch) == 1
    assert input_ids(TogetherHook(), round_batch[0]) == [f"{p}-f1", f"{p}-f2"]
    assert manifest["counts"] == {"succeeded": 4, "errored": 0, "missing": 0, "total": 4}


def test_a_deferred_round_waits_in_the_trigger_and_cancels_on_kill(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-f", "emulator/request-flaky")])
    operator = BatchResultsOperator(
        task_id="results",
        batch_id=batch.id,
        result_path=str(tmp_path / "rows.jsonl"),
        retry_failed_requests=1,
    )
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"ti": ti})
    trigger = deferred.value.trigger
    state = ti.xcoms["repair"]
    assert trigger.cancel_on_kill is True and trigger.batch_ids == state["pending"]
    assert state["round"] == 1 and state["batch_ids"] == [batch.id]
    assert "api_key" not in json.dumps(trigger.serialize()[1]).lower()


def test_a_killed_worker_wait_cancels_the_round_in_flight(together_conn, emu, tmp_path):
    hook = TogetherHook()
    src = tmp_path / "never.jsonl"
    src.write_text(json.dumps(line(f"{uuid.uuid4().hex[:6]}-x", "emulator/never-finish")) + "\n")
    running = hook.create_batch(hook.upload_file(str(src)).id)
    operator = BatchResultsOperator(task_id="results", batch_id="b", result_path=str(tmp_path / "r.jsonl"))
    operator._round_ids = [running.id]
    operator.on_kill()
    assert hook.get_batch(running.id).raw_status == "CANCELLED"


def test_a_local_result_path_missing_on_resume_fails_at_once_saying_why(together_conn, tmp_path):
    operator = BatchResultsOperator(
        task_id="results",
        batch_id="b",
        result_path=str(tmp_path / "elsewhere.jsonl"),
        retry_failed_requests=1,
    )
    event = {"status": "COMPLETED", "batch_ids": ["b1"], "statuses": ["COMPLETED"]}
    ti = RecordingTI()
    ti.xcoms["repair"] = {"round": 1, "batch_ids": ["b0"], "many": False, "rounds": [], "pending": ["b1"]}
    with pytest.raises(AirflowFailException, match=r"not on this worker.*object storage URL"):
        operator.execute_complete({"ti": ti}, event)


def test_a_resume_without_its_state_says_so(together_conn, tmp_path):
    operator = BatchResultsOperator(
        task_id="results", batch_id="b", result_path=str(tmp_path / "r.jsonl"), retry_failed_requests=1
    )
    with pytest.raises(AirflowException, match="resumed without its repair state"):
        operator.execute_complete({"ti": RecordingTI()}, {"status": "COMPLETED", "batch_ids": ["b1"]})


@pytest.fixture
def run_repair_dag(airflow_db, together_conn, tmp_path):
    def run(dag_id, batch_id):
        result, report = tmp_path / f"{dag_id}.jsonl", tmp_path / f"{dag_id}.report.json"
        dag = load_dag(airflow_db, "together_repair.py", dag_id)
        dag_run = dag.test(run_conf={"batch_id": batch_id, "result": str(result), "report": str(report)})
        tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
        return tis, json.loads(report.read_text()), result

    return run


def state_of(ti):
    return str(getattr(ti.state, "value", ti.state))


def test_dag_test_repairs_deferred(run_repair_dag, tmp_path):
    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-a"), line(f"{p}-f", "emulator/request-flaky")])
    tis, got, result = run_repair_dag("together_repair_deferred", batch.id)
    assert state_of(tis["results"]) == "success" and tis["results"].try_number == 1
    assert got["return_value"]["counts"] == {"succeeded": 2, "errored": 0, "missing": 0, "total": 2}
    assert [r["round"] for r in got["return_value"]["rounds"]] == [0, 1]
    assert rows_of(result)[f"{p}-f"]["round"] == 1


def test_dag_test_repairs_a_table_deferred(run_repair_dag, tmp_path):
    pq = pytest.importorskip(
        "pyarrow.parquet", reason="pyarrow is not installed (the parquet extra brings it)"
    )
    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-a"), line(f"{p}-f", "emulator/request-flaky")])
    tis, got, result = run_repair_dag("together_repair_table", batch.id)
    assert state_of(tis["results"]) == "success" and tis["results"].try_number == 1
    manifest = got["return_value"]
    assert manifest["format"] == "parquet" and manifest["rows"] == 2
    assert manifest["counts"] == {"succeeded": 2, "errored": 0, "missing": 0, "total": 2}
    rows = {row["custom_id"]: row for row in pq.read_table(result).to_pylist()}
    assert (rows[f"{p}-a"]["round"], rows[f"{p}-f"]["round"]) == (0, 1)
    assert rows[f"{p}-f"]["batch_id"] == manifest["rounds"][1]["batch_ids"][0]
    assert manifest["unpriced_models"] == ["emulator/request-flaky"] and manifest["cost"] is None
    # Round 0 answered only the priced model (the flaky one errored, using nothing); round 1 the other.
    assert manifest["rounds"][0]["cost"] == manifest["usage_by_model"]["test/model"]["cost"] > 0
    assert manifest["rounds"][1]["cost"] is None


def test_a_worker_lost_mid_round_leaves_one_batch_for_the_round(run_repair_dag, tmp_path):
    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-a"), line(f"{p}-f", "emulator/request-flaky")])
    hook = TogetherHook()
    tis, got, _ = run_repair_dag("together_repair_crash", batch.id)
    assert state_of(tis["results"]) == "success" and tis["results"].try_number == 2
    round_batches = got["return_value"]["rounds"][1]["batch_ids"]
    files = {f.id: f.filename or "" for f in hook.list_files()}
    rounds = [b for b in hook.list_batches() if "-r01-" in files.get(b.input_file_id, "")]
    made = [b for b in rounds if f"{p}-f" in input_ids(hook, b.id)]
    assert [b.id for b in made] == round_batches, "exactly one batch for round 1"


def test_the_asset_event_and_lineage_carry_every_round(together_conn, tmp_path):
    from airflow.providers.common.compat.assets import Asset

    from ..unit.tasks.test_assets import _Events, _Task

    p = uuid.uuid4().hex[:6]
    batch = batch_of(tmp_path, [line(f"{p}-a"), line(f"{p}-f", "emulator/request-flaky")])
    asset, events = Asset("together://repaired"), _Events()
    operator = BatchResultsOperator(
        task_id="results",
        batch_id=batch.id,
        result_path=str(tmp_path / "rows.jsonl"),
        retry_failed_requests=1,
        deferrable=False,
        poll_interval=0.2,
        outlets=[asset],
    )
    manifest = operator.execute({"ti": RecordingTI(), "task": _Task([asset]), "outlet_events": events})
    extra = events[asset].extra
    assert extra["rounds"] == manifest["rounds"] and extra["batch_id"] == batch.id
    round_batch = TogetherHook().get_batch(manifest["rounds"][1]["batch_ids"][0])
    read = {fid for fid in operator._lineage.input_file_ids}
    assert {batch.input_file_id, round_batch.input_file_id, round_batch.output_file_id} <= read
