"""What the waits of one event loop share: recent answers, in-flight fetches and resolved settings."""

from __future__ import annotations

import asyncio

import pytest

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

    async def scenario():
        share = LoopShare()
        await share.once(("settings", "conn"), 60.0, _value("settings"))
        await share.once(("batch", "conn", "/v1/batches/b1"), 0.001, _value("b1"))
        await asyncio.sleep(0.01)
        await share.once(("batch", "conn", "/v1/batches/b2"), 0.001, _value("b2"))
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


def test_settings_are_looked_up_again_after_the_ttl(counted_lookup, monkeypatch):
    calls, lookup = counted_lookup
    monkeypatch.setattr(async_client, "SETTINGS_TTL", 0.01)

    async def scenario():
        client = AsyncTogetherClient("a", lookup)
        await client.settings()
        await client.settings()
        await asyncio.sleep(0.02)
        await client.settings()

    asyncio.run(scenario())
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
