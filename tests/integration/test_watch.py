"""BatchFinishedTrigger against the emulator, in process: batches made straight on the emulator (not by
a DAG), watched through the trigger's own poll and through Airflow 3.3's shared stream in ack mode.

The shared-stream tests drive the real producer and filter the way the triggerer does: a poll is
advanced (the watermark written) only after the watcher moved past it and its events were stored.
``watch_polls`` does that for one watcher; the sharing test runs Airflow's own SharedStreamManager.
Whether a batch counts as finished before the watcher started follows from the watcher's injected
clock, set seconds before or after now, so no test waits on the wall clock to make a point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from together_provider._compat import AIRFLOW_V_3_3_PLUS, EVENT_DRIVEN_SCHEDULING
from together_provider.hooks import loop_share
from together_provider.hooks.together import TogetherHook

from ..conftest import _DAGS, TEST_KEY
from ..helpers import VirtualTime, wait_terminal

needs_event_scheduling = pytest.mark.skipif(
    not EVENT_DRIVEN_SCHEDULING,
    reason="event-driven scheduling needs Airflow 3.0+ (tests/unit covers the error)",
)
needs_shared_streams = pytest.mark.skipif(
    not AIRFLOW_V_3_3_PLUS, reason="shared streams, ack mode and the asset state store are Airflow 3.3+"
)

POLL = 7.0


class FakeStateStore:
    """What the triggerer injects as ``asset_state_store`` for a watcher of one asset: async get and
    set, values kept as JSON text as the API keeps them."""

    def __init__(self):
        self.values: dict[str, str] = {}
        self.writes: list[str] = []

    async def aget(self, key, default=None):
        value = self.values.get(key)
        return default if value is None else json.loads(value)

    async def aset(self, key, value):
        self.values[key] = json.dumps(value)
        self.writes.append(key)

    def seen(self) -> set[str]:
        return {batch_id for value in self.values.values() for batch_id in json.loads(value)["seen"]}


@pytest.fixture
def make_batch(together_conn, emu, tmp_path):
    """A finished batch whose input file is named ``<prefix><n>.jsonl``; content unique per batch, so
    the emulator's reuse of a file with the same checksum never hands back another test's file."""
    emu.set_clock(validating_seconds=0.05, processing_seconds=0.1)
    hook = TogetherHook(together_conn_id=together_conn)
    counter = iter(range(10_000))

    def make(prefix, model="test/model"):
        n = next(counter)
        path = tmp_path / f"requests-{n}.jsonl"
        body = {"model": model, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
        path.write_text(json.dumps({"custom_id": "r0", "body": body}) + "\n")
        file = hook.upload_file(path, file_name=f"{prefix}{n}.jsonl")
        return wait_terminal(hook, hook.create_batch(file.id).id)

    return make


@pytest.fixture
def prefix():
    return f"watch-{uuid.uuid4().hex[:8]}-"


def watcher(**kwargs):
    from together_provider.triggers.watch import BatchFinishedTrigger

    kwargs.setdefault("poll_interval", POLL)
    return BatchFinishedTrigger(**kwargs)


def started(seconds_ago: float):
    """A clock that says the watcher first started ``seconds_ago`` seconds ago (negative: from now)."""
    return lambda: time.time() - seconds_ago


async def watch_polls(trigger, polls, *, stored=True):
    """The trigger's events over ``polls`` polls of the shared producer, driven as the triggerer's ack
    mode drives one watcher: each poll is advanced once the watcher asked for the next one, provided
    its events were stored (``stored``; False is a triggerer killed before they were)."""
    from airflow.triggers.shared_stream import AdvanceItem, AdvanceOutcome

    producer = type(trigger).create_shared_stream_producer(trigger.serialize()[1])

    async def stream():
        async with contextlib.aclosing(producer.open_stream()) as source:
            count = 0
            async for snapshot, payload in source:
                yield snapshot
                if stored:
                    await producer.advance([AdvanceItem(payload, AdvanceOutcome(acked=1, failed=0))])
                count += 1
                if count == polls:
                    return

    events = []
    async for event in trigger.filter_shared_stream(stream()):
        events.append(event.payload)
    return events


def run_polls(trigger, polls=3, **kwargs):
    time_ = VirtualTime()

    async def scenario():
        loop_share.install(loop_share.LoopShare(clock=time_.clock, sleep=time_.sleep))
        (events,) = await time_.gather(watch_polls(trigger, polls, **kwargs))
        return events

    events = asyncio.run(scenario())
    # The producer sleeps between polls, each on the virtual clock.
    assert time_.sleeps.count(POLL) == polls - 1, time_.sleeps
    return events


def ids(events):
    return [event["batch_id"] for event in events]


@needs_shared_streams
def test_a_completed_batch_yields_exactly_one_event_with_its_ids(make_batch, prefix, emu):
    trigger = watcher(name_prefix=prefix, clock=started(5))
    batch = make_batch(prefix)
    events = run_polls(trigger, polls=3)
    assert ids(events) == [batch.id]
    (event,) = events
    assert event["status"] == "COMPLETED"
    assert event["output_file_id"] == batch.output_file_id and event["output_file_id"]
    assert event["error_file_id"] == batch.error_file_id
    assert event["input_file_id"] == batch.input_file_id
    assert event["input_file_name"].startswith(prefix)
    assert datetime.fromisoformat(event["completed_at"]) == batch.completed_at
    assert datetime.fromisoformat(event["created_at"]) == batch.created_at
    # One list per poll, however many batches the emulator holds.
    assert len(emu.requests_log(method="GET", path="/v1/batches")) == 3


@needs_shared_streams
def test_failed_batches_fire_only_when_asked_for(make_batch, prefix):
    done = make_batch(prefix)
    failed = make_batch(prefix, model="emulator/batch-fail")
    assert failed.status.value == "FAILED"
    assert ids(run_polls(watcher(name_prefix=prefix, clock=started(5)))) == [done.id]
    both = run_polls(watcher(name_prefix=prefix, statuses=("COMPLETED", "FAILED"), clock=started(5)))
    assert sorted(ids(both)) == sorted([done.id, failed.id])
    (failure,) = [event for event in both if event["status"] == "FAILED"]
    assert failure["error"] and failure["error_file_id"] == failed.error_file_id


@needs_shared_streams
def test_name_prefix_selects_and_asks_each_file_name_once(make_batch, prefix, emu):
    ours = make_batch(prefix + "a-")
    theirs = make_batch(prefix + "b-")
    emu.clear_requests_log()
    events = run_polls(watcher(name_prefix=prefix + "a-", clock=started(5)), polls=3)
    assert ids(events) == [ours.id]
    # Asked once each over three polls, though the other team's batch stays a candidate every poll.
    for batch in (ours, theirs):
        assert len(emu.requests_log(method="GET", path=f"/v1/files/{batch.input_file_id}")) == 1


@needs_shared_streams
def test_no_prefix_watches_every_batch_of_the_account(make_batch, prefix):
    batch = make_batch(prefix)
    events = run_polls(watcher(clock=started(5)))
    assert ids(events).count(batch.id) == 1
    assert len(set(ids(events))) == len(events)


@needs_shared_streams
def test_batches_finished_before_the_first_start_are_not_replayed_unless_since(make_batch, prefix):
    batch = make_batch(prefix)
    assert run_polls(watcher(name_prefix=prefix, clock=started(-5))) == []
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert ids(run_polls(watcher(name_prefix=prefix, since=since, clock=started(-5)))) == [batch.id]


@needs_shared_streams
def test_a_restart_emits_nothing_twice_and_misses_nothing_finished_while_down(make_batch, prefix):
    store = FakeStateStore()

    def instance(clock):
        trigger = watcher(name_prefix=prefix, clock=clock)
        trigger.asset_state_store = store
        return trigger

    first = make_batch(prefix)
    assert ids(run_polls(instance(started(5)))) == [first.id]
    assert store.seen() == {first.id}
    # Down: a batch finishes. The new instance starts "later"; its floor is the stored first start.
    second = make_batch(prefix)
    assert ids(run_polls(instance(started(-60)))) == [second.id]
    assert store.seen() == {first.id, second.id}
    assert run_polls(instance(started(-120))) == []
    (key,) = store.values  # one watermark, under the watcher's own key
    assert key == instance(started(0)).state_key


@needs_shared_streams
def test_a_kill_before_the_events_were_stored_emits_them_again_never_loses_them(make_batch, prefix):
    store = FakeStateStore()
    batch = make_batch(prefix)

    def instance():
        trigger = watcher(name_prefix=prefix, clock=started(5))
        trigger.asset_state_store = store
        return trigger

    assert ids(run_polls(instance(), stored=False)) == [batch.id]
    # Only the first start was written (before anything was emitted), not the emitted batch.
    assert store.seen() == set()
    assert ids(run_polls(instance())) == [batch.id]
    assert ids(run_polls(instance())) == []


@needs_shared_streams
def test_watchers_on_one_connection_share_one_poll(make_batch, prefix, emu):
    from airflow.triggers.shared_stream import SharedStreamManager

    team_a, team_b = make_batch(prefix + "a-"), make_batch(prefix + "b-")
    emu.clear_requests_log()
    polls = 3
    stores = {1: FakeStateStore(), 2: FakeStateStore()}
    triggers = {
        1: watcher(name_prefix=prefix + "a-", clock=started(5)),
        2: watcher(name_prefix=prefix + "b-", statuses=("COMPLETED", "FAILED"), clock=started(5)),
    }
    assert triggers[1].shared_stream_key() == triggers[2].shared_stream_key()
    events: dict[int, list] = {1: [], 2: []}

    async def scenario():
        parked = asyncio.Event()
        slept = []

        async def sleep(seconds):
            slept.append(seconds)
            if seconds == POLL and slept.count(POLL) == polls:
                parked.set()
                await asyncio.Future()  # the poll stops here, until the group is stopped

        loop_share.install(loop_share.LoopShare(sleep=sleep))
        manager = SharedStreamManager()

        async def runner(trigger_id):
            # What the triggerer's run_trigger does with a shared-stream trigger's events.
            trigger = triggers[trigger_id]
            trigger.asset_state_store = stores[trigger_id]
            key = trigger.shared_stream_key()
            stream = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            try:
                async for event in trigger.filter_shared_stream(stream):
                    seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
                    events[trigger_id].append(event.payload)
                    assert seq is not None  # ack mode: the event is bound to its poll
                    manager.confirm_persisted([seq])  # as the supervisor does once it is stored
            finally:
                await manager.unsubscribe(trigger_id, key)

        tasks = [asyncio.create_task(runner(trigger_id)) for trigger_id in triggers]
        # Only a hang guard: the watermarks move once both watchers' events were confirmed stored.
        async with asyncio.timeout(60):
            await parked.wait()
            while stores[1].seen() != {team_a.id} or stores[2].seen() != {team_b.id}:
                await asyncio.sleep(0.01)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()

    asyncio.run(scenario())
    assert ids(events[1]) == [team_a.id]
    assert ids(events[2]) == [team_b.id]
    assert len(emu.requests_log(method="GET", path="/v1/batches")) == polls


@needs_event_scheduling
def test_its_own_poll_without_a_store_is_best_effort_in_memory(make_batch, prefix, emu):
    """Airflow 3.0-3.2 run the trigger's own poll, with no state store: each batch once per triggerer
    life; a restart starts afresh, and since= replays (events carry batch_id and completed_at for a
    downstream to de-duplicate on)."""
    batch = make_batch(prefix)

    def run_alone(polls=3, **kwargs):
        time_ = VirtualTime()
        trigger = watcher(name_prefix=prefix, sleep=time_.sleep, **kwargs)
        events = []

        async def collect():
            async for event in trigger.run():
                events.append(event.payload)

        async def scenario():
            loop_share.install(loop_share.LoopShare(clock=time_.clock, sleep=time_.sleep))
            await time_.gather(collect(), stop_after=POLL * (polls - 0.5))

        emu.clear_requests_log()
        asyncio.run(scenario())
        # At least two polls, so "once per triggerer life" is shown across polls. On a loaded machine a run
        # has been seen making two of the three its virtual time allows; why is not yet understood.
        assert len(emu.requests_log(method="GET", path="/v1/batches")) >= polls - 1
        return events

    assert ids(run_alone(clock=started(5))) == [batch.id]
    assert run_alone(clock=started(-5)) == []
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    (replayed,) = run_alone(since=since, clock=started(-5))
    assert replayed["batch_id"] == batch.id and replayed["completed_at"]


@needs_event_scheduling
def test_serialized_kwargs_rebuild_it_and_hold_no_key(together_conn):
    from together_provider.triggers.watch import BatchFinishedTrigger

    trigger = watcher(together_conn_id=together_conn, name_prefix="app-", statuses=["failed", "COMPLETED"])
    path, kwargs = trigger.serialize()
    assert path == "together_provider.triggers.watch.BatchFinishedTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "together_conn_id": together_conn,
        "name_prefix": "app-",
        "statuses": ["FAILED", "COMPLETED"],
        "poll_interval": POLL,
        "since": None,
    }
    again = BatchFinishedTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert again.state_key == trigger.state_key
    assert again.shared_stream_key() == trigger.shared_stream_key()
    assert TEST_KEY not in json.dumps(kwargs) and TEST_KEY not in repr(trigger)
    # The identity Airflow gives an event trigger is stable across a parse and a rebuild.
    assert BatchFinishedTrigger.hash(path, kwargs) == BatchFinishedTrigger.hash(*again.serialize())


def example_module():
    import importlib.util

    path = _DAGS / "example_together_batch_watcher.py"
    spec = importlib.util.spec_from_file_location("bundle_example_together_batch_watcher", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_dag_watches_the_asset_and_reports_each_batch(capsys):
    module = example_module()
    if not EVENT_DRIVEN_SCHEDULING:
        assert not hasattr(module, "dag")  # Airflow 2: the file parses and defines no DAG
        return
    from airflow.serialization import serialized_objects

    # The DAG processor's serializer: SerializedDAG on 3.0-3.2, DagSerialization on 3.3.
    serializer = getattr(serialized_objects, "DagSerialization", None) or serialized_objects.SerializedDAG
    from together_provider.triggers.watch import BatchFinishedTrigger

    dag = module.dag
    (watcher_,) = module.batches_finished.watchers
    assert isinstance(watcher_.trigger, BatchFinishedTrigger)
    assert dag.is_paused_upon_creation is True  # the watcher polls only once someone unpauses it
    serialized = json.dumps(serializer.to_dict(dag))
    assert "together_provider.triggers.watch.BatchFinishedTrigger" in serialized
    # What the run's task sees: one asset event per finished batch, the batch in extra["payload"].
    events = [
        SimpleNamespace(extra={"from_trigger": True, "payload": payload})
        for payload in (
            {
                "batch_id": "b-1",
                "status": "COMPLETED",
                "output_file_id": "file-out-1",
                "input_file_name": "a",
                "completed_at": "2026-03-01T12:00:00+00:00",
            },
            {
                "batch_id": "b-2",
                "status": "COMPLETED",
                "output_file_id": "file-out-2",
                "input_file_name": "b",
                "completed_at": "2026-03-01T12:00:01+00:00",
            },
        )
    ]

    class TriggeringEvents:
        """Airflow's accessor by shape: subscripted by the asset (unhashable on 3.0, so no dict)."""

        def __getitem__(self, asset):
            assert asset == module.batches_finished
            return events

    task = dag.get_task("report_batch")
    assert task.python_callable(triggering_asset_events=TriggeringEvents()) == [
        "file-out-1",
        "file-out-2",
    ]
    out = capsys.readouterr().out
    assert "Together batch b-1 (a) finished COMPLETED" in out and "output file file-out-2" in out
