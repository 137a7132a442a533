"""What the waits of one event loop share: recent answers, in-flight fetches and resolved settings."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import VirtualTime
from together_provider.client.settings import ConnectionSettings
from together_provider.hooks import async_client, loop_share
from together_provider.hooks.async_client import AsyncTogetherClient
from together_provider.hooks.loop_share import LoopShare, RecentAnswers


def test_recent_answers_forget_the_oldest_first():
    answers = RecentAnswers()
    for second in range(10):
        answers.put(("batch", second), float(second), f"answer {second}", max_age=3.0)
    # At t=9 with 3 s kept, answers fetched at 6..9 remain; older ones were popped from the front.
    assert list(answers.items) == [("batch", s) for s in range(6, 10)]
    assert answers.fresh(("batch", 9), 9.5, 1.0) == (9.0, "answer 9")
    assert answers.fresh(("batch", 6), 9.5, 1.0) is None, "too old for this caller's max_age"


def test_a_refetched_answer_moves_to_the_back():
    answers = RecentAnswers()
    answers.put("a", 0.0, 1, max_age=5.0)
    answers.put("b", 1.0, 2, max_age=5.0)
    answers.put("a", 2.0, 3, max_age=5.0)
    assert list(answers.items) == ["b", "a"]
    answers.put("c", 6.5, 4, max_age=5.0)
    assert list(answers.items) == ["a", "c"], "b (t=1) expired; a (t=2) did not"


def test_kinds_are_kept_apart():
    """A long-lived kind (settings, 60 s) must not keep short-lived batch answers alive."""

    time = VirtualTime()

    async def scenario():
        share = LoopShare(clock=time.clock, sleep=time.sleep)
        await share.once(("settings", "conn"), 60.0, _value("settings"))
        await share.once(("batch", "conn", "/v1/batches/b1"), 1.0, _value("b1"))
        await time.gather(time.sleep(2.0))
        await share.once(("batch", "conn", "/v1/batches/b2"), 1.0, _value("b2"))
        return share

    share = asyncio.run(scenario())
    assert list(share.recent["batch"].items) == [("batch", "conn", "/v1/batches/b2")]
    assert list(share.recent["settings"].items) == [("settings", "conn")]


def _value(value):
    async def fetch():
        return value

    return fetch


def test_concurrent_fetches_of_one_key_make_one_call():
    calls = []

    async def fetch():
        calls.append(1)
        await asyncio.sleep(0.01)
        return "answer"

    async def scenario():
        share = LoopShare()
        return await asyncio.gather(*(share.once(("batch", "k"), 0.0, fetch) for _ in range(50)))

    assert asyncio.run(scenario()) == ["answer"] * 50
    assert calls == [1]


@pytest.fixture
def counted_lookup():
    calls: list[str] = []

    async def lookup(conn_id: str) -> ConnectionSettings:
        calls.append(conn_id)
        await asyncio.sleep(0)
        return ConnectionSettings(base_url="http://127.0.0.1:1", api_key=f"key-of-{conn_id}")

    return calls, lookup


def test_settings_resolved_once_per_loop_and_connection(counted_lookup):
    calls, lookup = counted_lookup

    async def scenario():
        clients = [AsyncTogetherClient("a", lookup) for _ in range(100)] + [AsyncTogetherClient("b", lookup)]
        return await asyncio.gather(*(client.settings() for client in clients))

    resolved = asyncio.run(scenario())
    assert sorted(calls) == ["a", "b"], "100 waits on one connection resolved it once"
    assert {s.api_key for s in resolved} == {"key-of-a", "key-of-b"}
    # Another loop (a test's, a worker's) never sees this loop's settings.
    asyncio.run(scenario())
    assert len(calls) == 4


def test_settings_are_looked_up_again_after_the_ttl(counted_lookup):
    calls, lookup = counted_lookup
    time = VirtualTime()

    async def scenario():
        loop_share.install(LoopShare(clock=time.clock, sleep=time.sleep))
        client = AsyncTogetherClient("a", lookup)
        await client.settings()
        await time.gather(time.sleep(async_client.SETTINGS_TTL))
        await client.settings()
        seen_at_ttl = list(calls)
        await time.gather(time.sleep(0.5))
        await client.settings()
        return seen_at_ttl

    assert asyncio.run(scenario()) == ["a"], "settings exactly SETTINGS_TTL old are still used"
    assert calls == ["a", "a"], "a rotated key reaches running waits once the cached settings expire"


def test_a_failed_lookup_is_not_remembered():
    calls = []

    async def lookup(conn_id: str) -> ConnectionSettings:
        calls.append(conn_id)
        raise ValueError("no Together API key")

    async def scenario():
        client = AsyncTogetherClient("a", lookup)
        for _ in range(2):
            with pytest.raises(ValueError, match="no Together API key"):
                await client.settings()

    asyncio.run(scenario())
    assert calls == ["a", "a"]


def test_each_loop_has_its_own_share():
    async def mine():
        return loop_share.current()

    assert asyncio.run(mine()) is not asyncio.run(mine())


def test_a_batch_one_wait_watches_is_not_kept():
    """Kept answers serve other waits on the same batch; with one wait they would only outlive it."""
    key = ("batch", "conn", "/v1/batches/b1")

    async def scenario():
        share = LoopShare()
        share.watch(key)
        await share.once(key, 60.0, _value("alone"))
        kept_alone = key in share.recent["batch"].items
        share.watch(key)
        await share.once(key, 60.0, _value("shared"))
        kept_shared = key in share.recent["batch"].items
        share.unwatch(key)
        share.unwatch(key)
        return kept_alone, kept_shared, key in share.recent["batch"].items, share.watchers

    assert asyncio.run(scenario()) == (False, True, False, {})


def test_the_default_share_reads_monotonic_time_and_sleeps_with_asyncio():
    import time

    share = LoopShare()
    assert share.clock is time.monotonic and share.sleep is asyncio.sleep


def test_an_answer_is_shared_while_young_enough_on_the_shares_clock():
    time = VirtualTime()
    calls = []

    async def fetch():
        calls.append(time.now)
        return len(calls)

    async def scenario():
        share = LoopShare(clock=time.clock, sleep=time.sleep)
        key = ("batch", "conn", "/v1/batches/b1")
        share.watch(key)
        share.watch(key)  # two waits watch it, so its answer is kept
        first = await share.once_aged(key, 10.0, fetch)
        await time.gather(time.sleep(4.0))
        reused = await share.once_aged(key, 10.0, fetch)
        await time.gather(time.sleep(6.5))
        again = await share.once_aged(key, 10.0, fetch)
        return first, reused, again

    assert asyncio.run(scenario()) == ((1, 0.0), (1, 4.0), (2, 0.0))
    assert calls == [time.start, time.start + 10.5]


def _fake_api(monkeypatch, time, answers):
    """The client's transport replaced: each request is answered from ``answers`` (status, body) in
    turn, and the virtual time it was sent at is recorded."""
    from together_provider.client import requests as api

    sent: list[float] = []

    async def send_async(session, settings, request):
        sent.append(time.now)
        status, body = answers.pop(0) if answers else (200, b'{"data": []}')
        return api.RawResponse(status, {}, body)

    monkeypatch.setattr(async_client, "send_async", send_async)
    return sent


def _lookup(**fields):
    async def lookup(conn_id: str) -> ConnectionSettings:
        return ConnectionSettings(base_url="http://127.0.0.1:1", api_key="k", **fields)

    return lookup


def _run_clients(time, count, lookup):
    async def scenario():
        loop_share.install(LoopShare(clock=time.clock, sleep=time.sleep))
        clients = [AsyncTogetherClient("a", lookup) for _ in range(count)]
        try:
            return await time.gather(*(c.list_batches() for c in clients))
        finally:
            for c in clients:
                await c.close()

    return asyncio.run(scenario())


def test_the_request_budget_paces_with_the_shares_clock_and_sleep(monkeypatch):
    """Six calls at once on a budget of 2 a second: two go at once, then one every half second, each
    after the sleep the token bucket asked of the share."""
    time = VirtualTime()
    sent = _fake_api(monkeypatch, time, [])
    assert _run_clients(time, 6, _lookup(requests_per_second=2.0)) == [[]] * 6
    start = time.start
    assert sent == pytest.approx([start, start, start + 0.5, start + 1.0, start + 1.5, start + 2.0])
    assert time.sleeps == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_retry_back_off_sleeps_with_the_shares_sleep(monkeypatch):
    time = VirtualTime()
    sent = _fake_api(monkeypatch, time, [(503, b'{"error": {"message": "busy"}}')])
    assert _run_clients(time, 1, _lookup(requests_per_second=1000.0)) == [[]]
    assert len(sent) == 2 and len(time.sleeps) == 1 and time.sleeps[0] > 0
    assert sent[1] - sent[0] == pytest.approx(time.sleeps[0]), "the retry waited on the virtual clock"
