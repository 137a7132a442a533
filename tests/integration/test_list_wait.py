"""Waits on many batches against the emulator: mapped sensors (one per batch, each with its own XComs),
one sensor on a list (one trigger, or one poll round per poke, over every batch), the list trigger
itself, and BatchResultsOperator merging a list's results into one set and one manifest."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from together_provider._compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_3_PLUS,
    XCOM_STORES_NONE,
    AirflowFailException,
    TaskDeferred,
)
from together_provider.client.models import BatchStatus
from together_provider.hooks import loop_share
from together_provider.hooks.together import TogetherHook
from together_provider.operators.results import BatchResultsOperator
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.triggers.batch import BatchListStatusTrigger

from ..conftest import load_dag, register_outlet_assets
from ..helpers import RecordingTI, VirtualTime, stored_xcoms, wait_terminal, write_requests

MODES = ["deferrable", "poke"]
LIST_KEYS = ("batch_ids", "statuses", "output_file_ids", "error_file_ids")


def part(prefix, model="test/model", n=2, extra=()):
    return {"prefix": prefix, "model": model, "n": n, "extra": list(extra)}


def line(custom_id, model):
    return {"custom_id": custom_id, "body": {"model": model, "messages": [{"role": "user", "content": "x"}]}}


def state(ti):
    return str(getattr(ti.state, "value", ti.state))


def xcoms(dag_run, task_id):
    """``{(map_index, key): value}`` of a task's XComs as the metadata DB holds them, so each mapped
    instance's own values are seen apart."""
    return stored_xcoms(dag_run.dag_id, dag_run.run_id, task_id)


@pytest.fixture
def run_dag(airflow_db, together_conn):
    def run(dag_id, parts, **conf):
        dag = load_dag(airflow_db, "together_list_wait.py", dag_id)
        dag_run = dag.test(run_conf={"parts": parts, **conf})
        tis = {(ti.task_id, ti.map_index): ti for ti in dag_run.get_task_instances()}
        ids = xcoms(dag_run, "make").get((-1, "return_value"))
        return dag_run, tis, ids

    return run


@pytest.fixture
def stop_running():
    """Cancels what a test left running on the emulator, so it polls nothing after the test."""
    left: list[str] = []
    yield left
    hook = TogetherHook()
    for batch_id in left:
        if not hook.get_batch(batch_id).status.is_terminal:
            hook.cancel_batch(batch_id)


# ---- mapped: one sensor per batch ---------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_mapped_sensors_each_push_their_own_batch(run_dag, mode):
    parts = [part("a"), part("b", extra=[line("b-err", "emulator/request-error")]), part("c")]
    dag_run, tis, ids = run_dag(f"together_list_mapped_{mode}", parts)
    assert state(dag_run) == "success" and len(ids) == 3
    assert [state(tis[("wait", i)]) for i in range(3)] == ["success"] * 3
    got = xcoms(dag_run, "wait")
    for index, batch_id in enumerate(ids):
        assert got[(index, "batch_id")] == batch_id
        assert got[(index, "status")] == "COMPLETED" and got[(index, "output_file_id")]
        assert got[(index, "return_value")]["batch_id"] == batch_id
    assert got[(1, "error_file_id")]
    for index in (0, 2):
        if XCOM_STORES_NONE:
            assert got[(index, "error_file_id")] is None
        else:
            # Airflow 3.0 refuses a None XCom, so the key is not pushed (it pulls as None all the same).
            assert (index, "error_file_id") not in got


# ---- one sensor on a list -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", [*MODES, "reschedule"])
def test_list_wait_pushes_lists_in_order(run_dag, emu, mode):
    parts = [part("a"), part("b", extra=[line("b-err", "emulator/request-error")]), part("c")]
    dag_run, tis, ids = run_dag(f"together_list_all_{mode}", parts)
    assert state(tis[("wait", -1)]) == "success" and state(dag_run) == "success"
    got = xcoms(dag_run, "wait")
    assert got[(-1, "batch_ids")] == ids
    assert got[(-1, "statuses")] == ["COMPLETED"] * 3
    hook = TogetherHook()
    batches = [hook.get_batch(b) for b in ids]
    assert got[(-1, "output_file_ids")] == [b.output_file_id for b in batches] and all(
        got[(-1, "output_file_ids")]
    )
    assert got[(-1, "error_file_ids")] == [None, batches[1].error_file_id, None] and batches[1].error_file_id
    assert got[(-1, "return_value")] == {key: got[(-1, key)] for key in LIST_KEYS}
    # No single-batch keys for a list: a reader of batch_id would get one batch of several.
    assert (-1, "batch_id") not in got and (-1, "output_file_id") not in got


def test_list_rendered_by_jinja_as_text(run_dag):
    """``"{{ ti.xcom_pull(task_ids='make') }}"`` renders the list as its Python repr: still a list."""
    dag_run, tis, ids = run_dag("together_list_jinja", [part("a"), part("b")])
    assert state(tis[("wait", -1)]) == "success"
    assert xcoms(dag_run, "wait")[(-1, "batch_ids")] == ids


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cancel", [False, True])
def test_one_failed_part_fails_the_wait_at_once(run_dag, emu, mode, cancel, task_logs, stop_running):
    """A part ends FAILED while another can never finish: the wait fails on the FAILED one (so it did
    not wait for all), without retries, naming it; the other is cancelled only when asked. (No part that
    completes here: it would finish at about the moment the failing part fails, so whether the wait had
    seen it finish would be a race; the unit tests cover a completed part under cancel_rest_on_failure.)"""
    parts = [part("c", model="emulator/never-finish"), part("b", model="emulator/batch-fail")]
    dag_run, tis, ids = run_dag(f"together_list_{'cancel' if cancel else 'all'}_{mode}", parts)
    stop_running.extend(ids)
    wait = tis[("wait", -1)]
    assert state(wait) == "failed" and wait.try_number == 1 and wait.max_tries == 2
    logs = task_logs()
    assert f"Together batch {ids[1]} (2 of 2) ended FAILED: emulator: batch failed on purpose" in logs
    never = TogetherHook().get_batch(ids[0]).status
    got = xcoms(dag_run, "wait")
    assert got[(-1, "batch_ids")] == ids and got[(-1, "statuses")][1] == "FAILED"
    if cancel:
        assert never is BatchStatus.CANCELLED
        assert got[(-1, "statuses")][0] in ("CANCELLING", "CANCELLED")
        assert f"cancelled the 1 still running: {ids[0]}" in logs
    else:
        assert never is BatchStatus.IN_PROGRESS
        assert got[(-1, "statuses")][0] == "IN_PROGRESS"
        assert f"left 1 running: {ids[0]} (cancel_rest_on_failure=True cancels them)" in logs


@pytest.mark.parametrize(
    ("batch_id", "words"),
    [
        ([], "batch_id is an empty list"),
        ("[]", "batch_id is an empty list"),
        (
            ["b-1", 7],
            "batch_id[1] must be a non-empty string: give a Together id (a batch's UUID, "
            "or 'file-...'), got 7",
        ),
        (["b-1", " "], "batch_id[1] must be a non-empty string"),
        (
            "['b-1', None]",
            "batch_id[1] must be a non-empty string: give a Together id (a batch's UUID, "
            "or 'file-...'), got None",
        ),
        (["b-1", "b-1"], "batch_id lists batch 'b-1' twice"),
        ("[b-1, b-2", "batch_id looks like a list but is neither a JSON list nor a Python list literal"),
    ],
)
@pytest.mark.parametrize("deferrable", [True, False])
def test_bad_lists_fail_at_once_naming_batch_id(together_conn, emu, batch_id, words, deferrable):
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch_id, deferrable=deferrable, mode="poke")
    with pytest.raises(AirflowFailException) as failed:
        sensor.execute({"ti": RecordingTI()})
    assert words in str(failed.value)
    assert emu.requests_log(method="GET") == [], "nothing is polled for a bad list"


def test_list_kill_cancels_every_batch(together_conn, tmp_path):
    hook = TogetherHook()
    ids = [
        hook.create_batch(
            hook.upload_file(write_requests(tmp_path / f"k{i}.jsonl", n=1, model="emulator/never-finish")).id
        ).id
        for i in range(2)
    ]
    BatchCompletionSensor(task_id="wait", batch_id=ids, cancel_on_kill=True).on_kill()
    assert [hook.get_batch(b).status for b in ids] == [BatchStatus.CANCELLED] * 2


# ---- the list trigger ---------------------------------------------------------------------------


@pytest.fixture
def make_batch(together_conn, tmp_path):
    hook = TogetherHook(together_conn_id=together_conn)
    counter = iter(range(10_000))

    def make(model="test/model", n=2):
        src = write_requests(tmp_path / f"t{next(counter)}.jsonl", n=n, model=model)
        return hook.create_batch(hook.upload_file(src).id).id

    return make


async def collect(trigger):
    async with asyncio.timeout(30):  # a hang guard only
        return [event.payload async for event in trigger.run()]


def test_the_sensor_defers_a_list_to_one_list_trigger_and_one_id_as_before(make_batch):
    ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(2)]
    try:
        with pytest.raises(TaskDeferred) as deferred:
            BatchCompletionSensor(
                task_id="wait", batch_id=ids, poll_interval=5, cancel_rest_on_failure=True
            ).execute({"ti": RecordingTI()})
        classpath, kwargs = deferred.value.trigger.serialize()
        assert classpath == "together_provider.triggers.batch.BatchListStatusTrigger"
        assert kwargs["batch_ids"] == ids and kwargs["cancel_rest_on_failure"] is True
        assert kwargs["poll_interval"] == 5.0 and kwargs["cancel_on_kill"] is False
        # Rebuilt from its stored kwargs, as the triggerer does, it serializes to the same.
        assert BatchListStatusTrigger(**kwargs).serialize() == (classpath, kwargs)
        assert json.loads(json.dumps(kwargs)) == kwargs
        assert "tk-" not in json.dumps(kwargs)
    finally:
        for b in ids:
            TogetherHook().cancel_batch(b)


# The list trigger's stored contract as first released, written out literally: never edit it to match a
# newer release (add a test for the new set instead).
LIST_CLASSPATH = "together_provider.triggers.batch.BatchListStatusTrigger"
LIST_KWARGS_FIRST = {
    "batch_ids": ["REPLACED-1", "REPLACED-2"],
    "together_conn_id": "together_default",
    "poll_interval": 0.1,
    "deadline": None,
    "max_consecutive_failures": 5,
    "cancel_on_kill": False,
    "cancel_rest_on_failure": False,
    "adaptive_polling": True,
}


def test_list_trigger_first_kwargs_load_and_run_to_their_event(make_batch):
    ids = [make_batch(), make_batch()]
    module, _, name = LIST_CLASSPATH.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    trigger = cls(**(LIST_KWARGS_FIRST | {"batch_ids": ids}))
    assert trigger.serialize() == (LIST_CLASSPATH, LIST_KWARGS_FIRST | {"batch_ids": ids})
    (event,) = asyncio.run(collect(trigger))
    assert event["status"] == "COMPLETED" and event["batch_ids"] == ids


def test_list_trigger_yields_one_event_when_all_complete(make_batch, emu):
    ids = [make_batch() for _ in range(3)]
    events = asyncio.run(collect(BatchListStatusTrigger(batch_ids=ids, poll_interval=0.1)))
    assert len(events) == 1
    (event,) = events
    assert event["status"] == "COMPLETED" and event["batch_ids"] == ids
    assert event["statuses"] == ["COMPLETED"] * 3 and all(event["output_file_ids"])
    assert event["error_file_ids"] == [None] * 3 and event["running"] == []


def test_list_trigger_polls_each_batch_once_per_interval(make_batch, emu):
    """Two list waits sharing two of their batches, on one loop: each batch costs one poll a round
    (through the loop share), not one per wait; a finished batch is not polled again."""
    never = [make_batch(model="emulator/never-finish", n=1) for _ in range(3)]
    done = make_batch()
    wait_terminal(TogetherHook(), done)
    emu.clear_requests_log()
    time = VirtualTime()

    def trigger(ids):
        return BatchListStatusTrigger(
            batch_ids=ids, poll_interval=4.0, adaptive_polling=False, clock=time.clock, sleep=time.sleep
        )

    async def scenario():
        loop_share.install(loop_share.LoopShare(clock=time.clock, sleep=time.sleep))
        waits = [collect(trigger([done, *never[:2]])), collect(trigger(never[1:]))]
        return await time.gather(*waits, stop_after=12.0)

    assert asyncio.run(scenario()) == [None, None], "both were still waiting when stopped"
    polls = {b: len(emu.requests_log(method="GET", path=f"/v1/batches/{b}")) for b in [done, *never]}
    # Polls at 0 and then every 3.6-4.4 s until 12 s: 3 or 4 rounds, shared where both waits watch.
    assert polls[done] == 1, polls
    assert all(3 <= polls[b] <= 4 for b in never), polls


def test_list_trigger_cancels_the_rest_when_one_fails(make_batch, emu):
    ids = [make_batch(model="emulator/never-finish", n=1), make_batch(model="emulator/batch-fail")]
    trigger = BatchListStatusTrigger(batch_ids=ids, poll_interval=0.1, cancel_rest_on_failure=True)
    (event,) = asyncio.run(collect(trigger))
    assert event["status"] == "FAILED" and event["batch_id"] == ids[1]
    assert event["cancelled"] == [ids[0]] and event["running"] == []
    assert TogetherHook().get_batch(ids[0]).status is BatchStatus.CANCELLED


def test_list_trigger_deadline_names_what_had_not_finished(make_batch, emu):
    ids = [make_batch(), make_batch(model="emulator/never-finish", n=1)]
    try:
        wait_terminal(TogetherHook(), ids[0])
        time = VirtualTime()
        trigger = BatchListStatusTrigger(
            batch_ids=ids, poll_interval=1.0, deadline=time.now + 3, clock=time.clock, sleep=time.sleep
        )

        async def scenario():
            loop_share.install(loop_share.LoopShare(clock=time.clock, sleep=time.sleep))
            return await time.gather(collect(trigger))

        ((event,),) = asyncio.run(scenario())
        assert event["status"] == "TIMEOUT" and ids[1] in event["error"] and ids[0] not in event["error"]
        assert event["statuses"] == ["COMPLETED", "IN_PROGRESS"]
        assert not TogetherHook().get_batch(ids[1]).status.is_terminal, "a timeout cancels nothing"
    finally:
        TogetherHook().cancel_batch(ids[1])


def test_list_trigger_unknown_batch_ends_with_an_error_naming_it(make_batch, emu):
    ids = [make_batch(), "batch-that-does-not-exist"]
    (event,) = asyncio.run(collect(BatchListStatusTrigger(batch_ids=ids, poll_interval=0.1)))
    assert event["status"] == "ERROR" and event["batch_id"] == ids[1] and not event["retryable"]


def test_list_trigger_kill_cancels_every_batch(make_batch, monkeypatch):
    from together_provider.triggers import batch as trigger_module

    ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(2)]
    trigger = BatchListStatusTrigger(batch_ids=ids, cancel_on_kill=True)
    if AIRFLOW_V_3_3_PLUS:
        asyncio.run(trigger.on_kill())
    else:

        async def failed(ti):
            return "failed"

        monkeypatch.setattr(trigger_module, "task_instance_state", failed)
        trigger.task_instance = SimpleNamespace(dag_id="d", task_id="wait", run_id="r", map_index=-1)
        asyncio.run(trigger.cleanup())
    assert [TogetherHook().get_batch(b).status for b in ids] == [BatchStatus.CANCELLED] * 2


def test_list_trigger_run_never_blocks_the_loop(make_batch, emu, monkeypatch):
    """One list wait on ten batches whose polls the emulator holds unanswered: all ten requests are in
    flight at once, while another task on the loop watches them arrive. A poll that blocked the loop
    would hold it through its own request, so no two could be in flight together."""
    from ..conftest import connection_uri_env

    ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(10)]
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_requests_per_second=1000)
    )
    emu.clear_requests_log()
    emu.set_faults(
        {"method": "GET", "path": "^/v1/batches/[^/]+$", "kind": "slow", "delay": 20.0, "times": None}
    )

    async def scenario():
        wait = asyncio.create_task(collect(BatchListStatusTrigger(batch_ids=ids, poll_interval=60)))
        try:
            async with asyncio.timeout(15):  # a hang guard, not a speed figure
                while True:
                    log = await asyncio.to_thread(emu.requests_log, "GET")
                    held = {e["path"] for e in log if e["status"] is None}
                    if len(held) == len(ids):
                        return held, wait.done()
                    await asyncio.sleep(0.01)
        finally:
            wait.cancel()
            await asyncio.gather(wait, return_exceptions=True)

    held, done = asyncio.run(scenario())
    assert held == {f"/v1/batches/{b}" for b in ids}
    assert not done, "the wait was still waiting for its first answers"
    emu.clear_faults()
    for b in ids:
        TogetherHook().cancel_batch(b)


# ---- results across a list ----------------------------------------------------------------------


def test_results_merge_three_batches(run_dag, tmp_path):
    parts = [
        part("a", n=2, extra=[line("a-err", "emulator/request-error")]),
        part("b", n=2, extra=[line("b-gone", "emulator/request-missing")]),
        part("c", n=3),
    ]
    result = tmp_path / "merged.jsonl"
    dag_run, tis, ids = run_dag("together_list_results", parts, result=str(result))
    assert state(tis[("results", -1)]) == "success", state(tis[("results", -1)])
    rows = [json.loads(row) for row in result.open()]
    by_id = {row["custom_id"]: row["status"] for row in rows}
    assert len(rows) == len(by_id) == 9
    assert by_id == {
        "a0": "succeeded",
        "a1": "succeeded",
        "a-err": "errored",
        "b0": "succeeded",
        "b1": "succeeded",
        "b-gone": "missing",
        "c0": "succeeded",
        "c1": "succeeded",
        "c2": "succeeded",
    }
    manifest = xcoms(dag_run, "results")[(-1, "return_value")]
    assert manifest["schema_version"] == 2
    assert manifest["counts"] == {"succeeded": 7, "errored": 1, "missing": 1, "total": 9}
    assert (
        manifest["usage"]["total_tokens"] == sum((r["usage"] or {}).get("total_tokens", 0) for r in rows) > 0
    )
    assert manifest["batch_ids"] == ids and manifest["statuses"] == ["COMPLETED"] * 3
    hook = TogetherHook()
    batches = [hook.get_batch(b) for b in ids]
    assert manifest["output_file_ids"] == [b.output_file_id for b in batches]
    assert manifest["error_file_ids"] == [batches[0].error_file_id, None, None] and batches[0].error_file_id
    assert manifest["status"] == "COMPLETED" and manifest["result_uri"].endswith("merged.jsonl")
    assert manifest["batch_id"] is None and manifest["output_file_id"] is None
    assert xcoms(dag_run, "results")[(-1, "manifest")] == manifest


def test_results_of_a_list_with_a_failed_part_and_a_repeated_custom_id(together_conn, tmp_path, caplog):
    """The worst status wins; a custom id in two parts (impossible for a valid split) is one row."""
    hook = TogetherHook()

    def batch(name, lines):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))
        return hook.create_batch(hook.upload_file(path).id).id

    ids = [
        batch("one", [line("x0", "test/model"), line("dup", "test/model")]),
        batch("two", [line("dup", "test/model"), line("y1", "test/model")]),
        batch("three", [line("z0", "emulator/batch-fail"), line("z1", "emulator/batch-fail")]),
    ]
    for b in ids:
        wait_terminal(hook, b)
    result = tmp_path / "merged.jsonl"
    ti = RecordingTI()
    op = BatchResultsOperator(task_id="results", batch_id=json.dumps(ids), result_path=str(result))
    manifest = op.execute({"ti": ti})
    rows = [json.loads(row) for row in result.open()]
    assert [row["custom_id"] for row in rows].count("dup") == 1
    assert {row["custom_id"] for row in rows} == {"x0", "dup", "y1", "z0", "z1"}
    assert manifest["counts"]["total"] == len(rows) == 5
    assert manifest["status"] == "FAILED" and manifest["statuses"] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert f"'dup' of Together batch {ids[1]} was already landed from batch {ids[0]}" in caplog.text
    assert ti.xcoms["manifest"] == manifest


def test_results_of_a_list_refuse_a_running_part_before_writing(together_conn, tmp_path, stop_running):
    hook = TogetherHook()
    done = hook.create_batch(hook.upload_file(write_requests(tmp_path / "d.jsonl")).id).id
    never = hook.create_batch(
        hook.upload_file(write_requests(tmp_path / "n.jsonl", n=1, model="emulator/never-finish")).id
    ).id
    stop_running.append(never)
    wait_terminal(hook, done)
    result = tmp_path / "merged.jsonl"
    op = BatchResultsOperator(task_id="results", batch_id=[done, never], result_path=str(result))
    with pytest.raises(AirflowFailException) as failed:
        op.execute({"ti": RecordingTI()})
    assert never in str(failed.value) and "not finished" in str(failed.value)
    assert not result.exists()


# ---- asset events -------------------------------------------------------------------------------


def asset_extras(uri):
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent, AssetModel

        model, event, key = AssetModel, AssetEvent, AssetEvent.asset_id
    else:
        from airflow.models.dataset import DatasetEvent, DatasetModel

        model, event, key = DatasetModel, DatasetEvent, DatasetEvent.dataset_id
    with create_session() as session:
        rows = session.query(event).join(model, model.id == key).filter(model.uri == uri).order_by(event.id)
        return [(row.extra, row.source_run_id) for row in rows.all()]


def test_list_wait_and_merged_results_put_the_lists_on_their_asset_events(
    airflow_db, together_conn, tmp_path
):
    dag = load_dag(airflow_db, "together_list_wait.py", "together_list_assets")
    register_outlet_assets(dag)
    result = tmp_path / "merged.jsonl"
    dag_run = dag.test(run_conf={"parts": [part("a"), part("b")], "result": str(result)})
    assert state(dag_run) == "success"
    ids = xcoms(dag_run, "make")[(-1, "return_value")]
    wait_extra, run_id = asset_extras("together://tests/list-wait")[-1]
    assert run_id == dag_run.run_id
    assert wait_extra == {key: xcoms(dag_run, "wait")[(-1, key)] for key in LIST_KEYS}
    assert wait_extra["batch_ids"] == ids and wait_extra["statuses"] == ["COMPLETED"] * 2
    results_extra, run_id = asset_extras("together://tests/list-results")[-1]
    assert run_id == dag_run.run_id and results_extra["batch_ids"] == ids
    assert results_extra["counts"] == {"succeeded": 4, "errored": 0, "missing": 0, "total": 4}
    assert results_extra["status"] == "COMPLETED" and results_extra["result_uri"].endswith("merged.jsonl")


# ---- with the real split submit -----------------------------------------------------------------


def test_split_submit_feeds_mapped_and_list_waits_and_merged_results(airflow_db, together_conn, tmp_path):
    src = write_requests(
        tmp_path / "big.jsonl",
        n=6,
        extra_lines=[line("err", "emulator/request-error"), line("gone", "emulator/request-missing")],
    )
    result = tmp_path / "merged.jsonl"
    dag = load_dag(airflow_db, "together_list_wait.py", "together_list_split")
    dag_run = dag.test(run_conf={"input": str(src), "result": str(result)})
    assert state(dag_run) == "success"
    ids = xcoms(dag_run, "submit")[(-1, "return_value")]
    assert isinstance(ids, list) and len(ids) == 3  # 8 requests, at most 3 a part
    each = xcoms(dag_run, "wait_each")
    assert [each[(i, "batch_id")] for i in range(3)] == ids
    assert xcoms(dag_run, "wait")[(-1, "batch_ids")] == ids
    manifest = xcoms(dag_run, "results")[(-1, "return_value")]
    assert manifest["batch_ids"] == ids and manifest["statuses"] == ["COMPLETED"] * 3
    assert manifest["counts"] == {"succeeded": 6, "errored": 1, "missing": 1, "total": 8}
    rows = [json.loads(row) for row in result.open()]
    assert sorted(row["custom_id"] for row in rows) == sorted([*(f"r{i}" for i in range(6)), "err", "gone"])
