"""BatchStatusTrigger against the emulator: one event then stop, faults ridden out, deadline, a free loop.

Whatever depends on time runs on a virtual clock (``tests.helpers.VirtualTime``, passed as the
trigger's ``clock`` and ``sleep`` and installed in the loop share), so every assertion follows from the
code, not from how busy the machine is. How late the loop runs under load is ``make bench``'s to measure.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from together_provider.hooks import loop_share
from together_provider.hooks.together import TogetherHook
from together_provider.triggers.batch import BatchStatusTrigger

from ..conftest import TEST_KEY
from ..helpers import VirtualTime, write_requests


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


def on_virtual_time(time: VirtualTime, after: float | None = None, **kwargs) -> BatchStatusTrigger:
    """A trigger on ``time``: its deadline ``after`` seconds from now, its sleeps virtual."""
    deadline = None if after is None else time.now + after
    return BatchStatusTrigger(deadline=deadline, clock=time.clock, sleep=time.sleep, **kwargs)


def run_on_virtual_time(time: VirtualTime, waits, stop_after=None) -> tuple[list, loop_share.LoopShare]:
    """The ``waits`` (coroutines) run together, with the loop share's clock and sleep on ``time``; a
    wait still sleeping ``stop_after`` seconds on ends with None."""

    async def scenario():
        share = loop_share.install(loop_share.LoopShare(clock=time.clock, sleep=time.sleep))
        return await time.gather(*waits, stop_after=stop_after), share

    return asyncio.run(scenario())


def batch_polls(emu, batch_id: str) -> int:
    return len(emu.requests_log(method="GET", path=f"/v1/batches/{batch_id}"))


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


def test_deadline_cuts_the_last_sleep_short(make_batch, emu):
    """Polls every 5 s (4.5-5.5 with jitter) with 12 s left: the last sleep ends exactly at the
    deadline, which then ends the wait without another poll."""
    batch_id = make_batch(model="emulator/never-finish")
    time = VirtualTime()
    trigger = on_virtual_time(time, 12.0, batch_id=batch_id, poll_interval=5, adaptive_polling=False)
    [events], _ = run_on_virtual_time(time, [collect(trigger)])
    assert [e["status"] for e in events] == ["TIMEOUT"]
    assert time.elapsed == pytest.approx(12.0)
    *full, last = time.sleeps
    assert len(full) == 2 and all(4.5 <= s <= 5.5 for s in full), time.sleeps
    assert 0 < last <= 5.5 and sum(time.sleeps) == pytest.approx(12.0)
    assert batch_polls(emu, batch_id) == len(time.sleeps), "one poll before each sleep, none at the deadline"


def test_deadline_already_passed_polls_nothing(emu, together_conn):
    events = asyncio.run(collect(BatchStatusTrigger(batch_id="b", deadline=time.time() - 1)))
    assert [e["status"] for e in events] == ["TIMEOUT"]
    assert emu.requests_log(path="/v1/batches/b") == []


def test_run_never_blocks_the_loop(make_batch, emu, monkeypatch):
    """Twenty waits whose polls the emulator holds unanswered: all twenty requests are in flight at once,
    while another task on the same loop watches them arrive. A wait that blocked the loop on its I/O
    would hold the loop through its own request, so no two could ever be in flight together."""
    from ..conftest import connection_uri_env

    batch_ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(20)]
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_requests_per_second=1000)
    )
    emu.clear_requests_log()
    # Held far longer than the arrivals take: a poll answered before the last one arrives would hide it.
    emu.set_faults(
        {"method": "GET", "path": "^/v1/batches/[^/]+$", "kind": "slow", "delay": 20.0, "times": None}
    )

    async def scenario():
        waits = [
            asyncio.create_task(collect(BatchStatusTrigger(batch_id=b, poll_interval=60))) for b in batch_ids
        ]
        try:
            async with asyncio.timeout(15):  # a hang guard, not a speed figure
                while True:
                    log = await asyncio.to_thread(emu.requests_log, "GET")
                    held = {e["path"] for e in log if e["status"] is None}
                    if len(held) == len(batch_ids):
                        return held, [w.done() for w in waits]
                    await asyncio.sleep(0.01)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    held, done = asyncio.run(scenario())
    assert held == {f"/v1/batches/{b}" for b in batch_ids}
    assert not any(done), "every wait was still waiting for its first answer"


def test_waits_share_one_pool_and_one_poll_per_batch(make_batch, emu):
    """Ten waits on each of five batches: one connection pool for the loop and, per batch, one request
    per round instead of ten."""

    batch_ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(5)]
    emu.clear_requests_log()
    time = VirtualTime()
    triggers = [
        on_virtual_time(time, batch_id=b, poll_interval=4.0, adaptive_polling=False)
        for b in batch_ids
        for _ in range(10)
    ]
    # Stopped from outside rather than by a deadline, which would cut the rounds short unevenly.
    results, share = run_on_virtual_time(time, [collect(t) for t in triggers], stop_after=12.0)
    assert results == [None] * len(triggers), "every wait was still waiting when stopped"
    # Each wait polls at 0 and then every 3.6-4.4 s until 12 s: 3 or 4 rounds, 150-200 requests
    # unshared. Shared, each batch costs one request a round.
    polls = {b: batch_polls(emu, b) for b in batch_ids}
    assert all(3 <= n <= 4 for n in polls.values()), polls
    assert share.session is None and share.users == 0  # closed by the last wait to leave


def test_request_budget_paces_many_waits(make_batch, emu, monkeypatch):
    from ..conftest import connection_uri_env

    batch_ids = [make_batch(model="emulator/never-finish", n=1) for _ in range(20)]
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_requests_per_second=10)
    )
    emu.clear_requests_log()
    time = VirtualTime()
    triggers = [
        on_virtual_time(time, 20.0, batch_id=b, poll_interval=1.0, adaptive_polling=False) for b in batch_ids
    ]
    results, _ = run_on_virtual_time(time, [collect(t) for t in triggers])
    assert all([e["status"] for e in events] == ["TIMEOUT"] for events in results)
    sent = len(emu.requests_log(method="GET"))
    # Unpaced, 20 waits polling about every second for 20 s would send ~400 requests. The budget lets
    # a burst of 10 go at once and then 10 a second, on the clock the waits run on; the waits ask for
    # more than that, so it is reached.
    assert 10 * 10 <= sent <= 10 + 10 * time.elapsed, (sent, time.elapsed)


def test_unchanged_polls_are_not_logged_again(make_batch, emu, monkeypatch):
    """A wait logs a poll when status or progress moved (and its terminal one), not every unchanged
    poll: ten thousand waits must not write ten thousand lines a minute."""
    from together_provider.triggers import batch as trigger_module

    lines: list[str] = []
    real = trigger_module._progress_line
    monkeypatch.setattr(trigger_module, "_progress_line", lambda *a: lines.append(real(*a)) or lines[-1])
    stuck = make_batch(model="emulator/never-finish")
    emu.set_clock(advance_seconds=3600)  # past validation, progress at its cap: nothing moves any more
    emu.clear_requests_log()
    time = VirtualTime()
    # Every 60 s (54-66 with jitter) for 1,000 s: a line for the first poll, one more once the quiet
    # period (600 s) is over, and none for the unchanged polls in between.
    trigger = on_virtual_time(time, 1000.0, batch_id=stuck, poll_interval=60, adaptive_polling=False)
    [events], _ = run_on_virtual_time(time, [collect(trigger)])
    assert [e["status"] for e in events] == ["TIMEOUT"]
    assert batch_polls(emu, stuck) >= 1000 // 66
    assert len(lines) == 2 and all(stuck in line for line in lines), lines

    monkeypatch.setattr(trigger_module, "QUIET_LOG_SECONDS", 0.0)
    lines.clear()
    emu.clear_requests_log()
    time = VirtualTime()
    trigger = on_virtual_time(time, 300.0, batch_id=stuck, poll_interval=60, adaptive_polling=False)
    run_on_virtual_time(time, [collect(trigger)])
    assert len(lines) == batch_polls(emu, stuck) >= 300 // 66, "with no quiet period every poll is logged"


def test_waits_on_one_batch_stay_in_step(make_batch, emu):
    """Ten waits on one batch, started a little apart: a wait that reused another's answer sleeps from
    when that answer was fetched, so the waits keep sharing one request a round instead of drifting
    apart by their jitter and read times, round after round."""
    import random

    batch_id = make_batch(model="emulator/never-finish", n=1)
    emu.clear_requests_log()
    interval, rounds = 10.0, 12
    time = VirtualTime()

    async def one(offset: float):
        await time.sleep(offset)
        trigger = on_virtual_time(time, batch_id=batch_id, poll_interval=interval, adaptive_polling=False)
        return await collect(trigger)

    offsets = [random.uniform(0, interval * 0.2) for _ in range(10)]
    run_on_virtual_time(time, [one(offset) for offset in offsets], stop_after=interval * rounds)
    # One request a round: a wait polls at most once per 9 s (the jitter's floor) after its first. The
    # first two rounds may cost one more each: the first answer is kept only once a second wait watches
    # the batch, and the waits' first wake-ups are not yet in step. Drifting apart by their jitter, the
    # ten waits would cost ever more requests a round.
    most_rounds = 1 + int(interval * rounds // (interval * 0.9))
    polls = batch_polls(emu, batch_id)
    assert polls <= most_rounds + 2, f"{polls} requests in at most {most_rounds} rounds"


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
        # A connect timeout shorter than a queued call's wait (two rounds), yet far above what a loaded
        # machine's scheduling adds to a connect on loopback.
        connection_uri_env(emu.url, connect_timeout=1.0, max_retries=0, max_requests_per_second=10_000),
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

    emu.set_clock(latency_ms=1000)
    try:
        started = time.monotonic()
        files = asyncio.run(scenario())
        waited = time.monotonic() - started
    finally:
        emu.set_clock(latency_ms=0)
    assert [f.id for f in files] == [file_id] * calls
    assert waited >= 2.0, "three rounds through the pool at 1 s each: the later calls queued past the timeout"


def test_a_wait_reusing_an_answer_near_its_deadline_does_not_spin(make_batch, emu):
    batch_id = make_batch(model="emulator/never-finish", n=1)
    time = VirtualTime()
    deadline_after = 11.0

    async def one(offset: float):
        await time.sleep(offset)
        trigger = on_virtual_time(
            time, deadline_after - offset, batch_id=batch_id, poll_interval=10.0, adaptive_polling=False
        )
        return await collect(trigger)

    # The second wait reuses the first's answer at t=2 (age 2 s); at the deadline 1 s remains of its wait.
    results, _ = run_on_virtual_time(time, [one(0.0), one(1.0), one(2.0)])
    assert all([e["status"] for e in events] == ["TIMEOUT"] for events in results)
