"""BatchStatusTrigger against the emulator: one event then stop, faults ridden out, deadline, a free loop."""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest

from together_provider.hooks.together import TogetherHook
from together_provider.triggers.batch import BatchStatusTrigger

from ..conftest import TEST_KEY
from ..helpers import write_requests


@pytest.fixture
def make_batch(together_conn, tmp_path):
    hook = TogetherHook(together_conn_id=together_conn)
    counter = iter(range(10_000))

    def make(model="test/model", n=2):
        src = write_requests(tmp_path / f"t{next(counter)}.jsonl", n=n, model=model)
        return hook.create_batch(hook.upload_file(src).id).id

    return make


async def collect(trigger, limit=30.0):
    """Every event the trigger yields, and whether its generator ended by itself."""
    events = []
    gen = trigger.run()
    async with asyncio.timeout(limit):
        async for event in gen:
            events.append(event.payload)
    return events


def test_serialize_round_trip_holds_no_secret():
    trigger = BatchStatusTrigger(batch_id="b-1", together_conn_id="c", poll_interval=5, deadline=1234.5)
    path, kwargs = trigger.serialize()
    assert path == "together_provider.triggers.batch.BatchStatusTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs == {
        "batch_id": "b-1",
        "together_conn_id": "c",
        "poll_interval": 5.0,
        "deadline": 1234.5,
        "max_consecutive_failures": 5,
        "cancel_on_kill": False,
        "adaptive_polling": True,
    }
    again = BatchStatusTrigger(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert TEST_KEY not in json.dumps(kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"batch_id": " "}, "batch_id"), ({"batch_id": "b", "poll_interval": 0}, "poll_interval")],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BatchStatusTrigger(**kwargs)


def test_one_event_then_stop_on_completion(make_batch):
    batch_id = make_batch()
    events = asyncio.run(collect(BatchStatusTrigger(batch_id=batch_id, poll_interval=0.1)))
    assert len(events) == 1
    event = events[0]
    assert event["status"] == "COMPLETED" and event["batch_id"] == batch_id
    assert event["output_file_id"] and event["error_file_id"] is None and event["progress"] == 100.0
    assert set(event) == {"status", "batch_id", "output_file_id", "error_file_id", "error", "progress"}


@pytest.mark.parametrize(
    ("model", "status"), [("emulator/batch-fail", "FAILED"), ("emulator/batch-expire", "EXPIRED")]
)
def test_failed_statuses_are_events_too(make_batch, model, status):
    events = asyncio.run(collect(BatchStatusTrigger(batch_id=make_batch(model=model), poll_interval=0.1)))
    assert [e["status"] for e in events] == [status]
    assert events[0]["error"]


def test_transient_errors_ridden_out(make_batch, emu):
    batch_id = make_batch()
    path = f"^/v1/batches/{batch_id}$"
    emu.set_faults(
        {"path": path, "kind": "status", "status": 429, "retry_after": "0.2", "times": 1},
        {"path": path, "kind": "status", "status": 503, "times": 1, "after": 1},
        {"path": path, "kind": "drop", "times": 1, "after": 2},
        {"path": path, "kind": "malformed", "times": 1, "after": 3},
    )
    events = asyncio.run(collect(BatchStatusTrigger(batch_id=batch_id, poll_interval=0.1)))
    assert [e["status"] for e in events] == ["COMPLETED"]
    assert len(emu.requests_log(path=f"/v1/batches/{batch_id}")) >= 5


def test_gives_up_after_consecutive_failures(make_batch, emu, monkeypatch):
    batch_id = make_batch()
    from ..conftest import connection_uri_env

    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))
    emu.set_faults({"path": f"^/v1/batches/{batch_id}$", "kind": "status", "status": 500, "times": 100})
    trigger = BatchStatusTrigger(batch_id=batch_id, poll_interval=0.05, max_consecutive_failures=3)
    events = asyncio.run(collect(trigger))
    assert len(events) == 1 and events[0]["status"] == "ERROR" and events[0]["retryable"] is True
    assert "3 times in a row" in events[0]["error"]
    assert len(emu.requests_log(path=f"/v1/batches/{batch_id}")) == 3


def test_unknown_batch_ends_at_once(together_conn, emu):
    events = asyncio.run(collect(BatchStatusTrigger(batch_id="no-such-batch", poll_interval=0.1)))
    assert len(events) == 1 and events[0]["status"] == "ERROR" and events[0]["retryable"] is False
    assert "404" in events[0]["error"]
    assert len(emu.requests_log()) == 1


def test_missing_connection_ends_with_error(monkeypatch):
    events = asyncio.run(collect(BatchStatusTrigger(batch_id="b", together_conn_id="nope_not_there")))
    assert len(events) == 1 and events[0]["status"] == "ERROR" and "nope_not_there" in events[0]["error"]


def test_deadline_is_wall_clock(make_batch):
    batch_id = make_batch(model="emulator/never-finish")
    started = time.monotonic()
    events = asyncio.run(
        collect(BatchStatusTrigger(batch_id=batch_id, poll_interval=5, deadline=time.time() + 0.5))
    )
    assert [e["status"] for e in events] == ["TIMEOUT"]
    assert time.monotonic() - started < 3.0


def test_deadline_already_passed_polls_nothing(emu, together_conn):
    events = asyncio.run(collect(BatchStatusTrigger(batch_id="b", deadline=time.time() - 1)))
    assert [e["status"] for e in events] == ["TIMEOUT"]
    assert emu.requests_log(path="/v1/batches/b") == []


def test_run_never_blocks_the_loop(make_batch, emu, monkeypatch):
    """100 triggers poll an emulator that answers after 200 ms; a 10 ms heartbeat stays on time."""
    from ..conftest import connection_uri_env

    batch_ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(100)]
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_requests_per_second=1000)
    )
    emu.set_clock(latency_ms=200)

    async def scenario():
        lags = []
        stop = asyncio.Event()

        async def heartbeat():
            while not stop.is_set():
                before = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append(time.perf_counter() - before - 0.01)

        beat = asyncio.create_task(heartbeat())
        deadline = time.time() + 2.5
        results = await asyncio.gather(
            *(
                collect(BatchStatusTrigger(batch_id=b, poll_interval=0.3, deadline=deadline))
                for b in batch_ids
            )
        )
        stop.set()
        await beat
        return lags, results

    try:
        lags, results = asyncio.run(scenario())
    finally:
        emu.set_clock(latency_ms=0)
    assert all([e["status"] for e in events] == ["TIMEOUT"] for events in results)
    polls = sum(len(emu.requests_log(path=f"/v1/batches/{b}")) for b in batch_ids)
    assert polls >= 300
    lags.sort()
    p99 = lags[int(len(lags) * 0.99)]
    print(
        f"heartbeat lag over {len(lags)} beats: median {statistics.median(lags) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms; {polls} polls"
    )
    assert p99 < 0.1, f"event loop blocked: p99 heartbeat lag {p99 * 1000:.0f} ms"


def test_waits_share_one_pool_and_one_poll_per_batch(make_batch, emu):
    """Ten waits on each of five batches: one connection pool for the loop and, per batch, one request
    per round instead of ten."""
    from together_provider.hooks import loop_share

    batch_ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(5)]
    emu.clear_requests_log()

    async def scenario():
        deadline = time.time() + 1.2
        triggers = [
            BatchStatusTrigger(batch_id=b, poll_interval=0.4, deadline=deadline, adaptive_polling=False)
            for b in batch_ids
            for _ in range(10)
        ]
        runs = [collect(t) for t in triggers]
        share = loop_share.current()
        results = await asyncio.gather(*runs)
        return results, share

    results, share = asyncio.run(scenario())
    assert all([e["status"] for e in events] == ["TIMEOUT"] for events in results)
    polls = {b: len(emu.requests_log(path=f"/v1/batches/{b}")) for b in batch_ids}
    # 50 waits, about 3 rounds each: unshared that is ~150 requests; shared, a handful per batch.
    assert sum(polls.values()) <= 5 * 6, polls
    assert share.session is None and share.users == 0  # closed by the last wait to leave


def test_request_budget_paces_many_waits(make_batch, emu, monkeypatch):
    from ..conftest import connection_uri_env

    batch_ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(20)]
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_requests_per_second=10)
    )
    emu.clear_requests_log()

    async def scenario():
        deadline = time.time() + 2.0
        return await asyncio.gather(
            *(
                collect(BatchStatusTrigger(batch_id=b, poll_interval=0.1, deadline=deadline))
                for b in batch_ids
            )
        )

    started = time.monotonic()
    asyncio.run(scenario())
    elapsed = time.monotonic() - started
    sent = len(emu.requests_log(method="GET"))
    # Unpaced, 20 waits polling every 0.1 s would send ~400 requests in 2 s.
    assert sent <= 10 * elapsed + 10 + 1, (sent, elapsed)


def test_unchanged_polls_are_not_logged_again(make_batch, emu, monkeypatch):
    """A wait logs a poll when status or progress moved (and its terminal one), not every unchanged
    poll: ten thousand waits must not write ten thousand lines a minute."""
    from together_provider.triggers import batch as trigger_module

    lines: list[str] = []
    real = trigger_module._progress_line
    monkeypatch.setattr(trigger_module, "_progress_line", lambda *a: lines.append(real(*a)) or lines[-1])
    stuck = make_batch(model="emulator/never-finish")
    emu.set_clock(advance_seconds=3600)  # past validation, progress at its cap: nothing moves any more
    trigger = BatchStatusTrigger(
        batch_id=stuck, poll_interval=0.05, adaptive_polling=False, deadline=time.time() + 0.8
    )
    assert [e["status"] for e in asyncio.run(collect(trigger))] == ["TIMEOUT"]
    polls = len(emu.requests_log(path=f"/v1/batches/{stuck}"))
    assert polls >= 5, "the wait should have polled several times"
    assert len(lines) == 1 and stuck in lines[0], lines

    monkeypatch.setattr(trigger_module, "QUIET_LOG_SECONDS", 0.0)
    lines.clear()
    trigger = BatchStatusTrigger(
        batch_id=stuck, poll_interval=0.05, adaptive_polling=False, deadline=time.time() + 0.5
    )
    asyncio.run(collect(trigger))
    assert len(lines) >= 3, "with no quiet period every poll is logged"


def test_waits_on_one_batch_stay_in_step(make_batch, emu):
    """Ten waits on one batch, started a little apart: a wait that reused another's answer sleeps from
    when that answer was fetched, so the waits keep sharing one request a round instead of drifting
    apart by their jitter and read times, round after round."""
    import random

    batch_id = make_batch(model="emulator/never-finish", n=1)
    emu.clear_requests_log()
    interval, rounds = 0.5, 12

    async def one(offset: float, deadline: float):
        await asyncio.sleep(offset)
        trigger = BatchStatusTrigger(
            batch_id=batch_id, poll_interval=interval, deadline=deadline, adaptive_polling=False
        )
        return await collect(trigger)

    async def scenario():
        deadline = time.time() + interval * rounds
        offsets = [random.uniform(0, interval * 0.2) for _ in range(10)]
        return await asyncio.gather(*(one(offset, deadline) for offset in offsets))

    assert all([e["status"] for e in events] == ["TIMEOUT"] for events in asyncio.run(scenario()))
    polls = len(emu.requests_log(path=f"/v1/batches/{batch_id}"))
    assert polls <= rounds * 1.5, f"{polls} requests in {rounds} rounds"


def test_queueing_for_the_pool_is_not_a_connect_timeout(together_conn, emu, monkeypatch, tmp_path):
    """More calls than pooled connections, a slow API and a short connect timeout: the calls queue for
    a connection, and that wait is not counted against the connect timeout (a triggerer restart with
    thousands of waits would otherwise fail its first polls)."""
    from together_provider.hooks import loop_share
    from together_provider.hooks.async_client import AsyncTogetherClient

    from ..conftest import connection_uri_env

    file_id = (
        TogetherHook(together_conn_id=together_conn).upload_file(write_requests(tmp_path / "q.jsonl")).id
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT",
        connection_uri_env(emu.url, connect_timeout=0.1, max_retries=0, max_requests_per_second=10_000),
    )
    calls = loop_share.POOL_LIMIT * 3

    async def scenario():
        clients = [AsyncTogetherClient("together_default") for _ in range(calls)]
        try:
            # File lookups, unlike batch polls, are not merged: every call is its own request.
            return await asyncio.gather(*(c.get_file(file_id) for c in clients))
        finally:
            for c in clients:
                await c.close()

    emu.set_clock(latency_ms=300)
    try:
        started = time.monotonic()
        files = asyncio.run(scenario())
        waited = time.monotonic() - started
    finally:
        emu.set_clock(latency_ms=0)
    assert [f.id for f in files] == [file_id] * calls
    assert waited >= 0.6, "three rounds through the pool at 300 ms each: the later calls did queue"
