"""BatchFinishedTrigger's decisions without I/O: argument checks, the watermark, the producer's advance,
and the error before Airflow 3.0 (the 2.11 matrix leg runs this file too)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from together_provider._compat import EVENT_DRIVEN_SCHEDULING, AirflowException
from together_provider.triggers import watch
from together_provider.triggers.watch import LOOKBACK, BatchListProducer, WatchState

needs_event_scheduling = pytest.mark.skipif(not EVENT_DRIVEN_SCHEDULING, reason="needs Airflow 3.0+")
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_importing_is_harmless_everywhere_and_building_says_why_before_3_0():
    if EVENT_DRIVEN_SCHEDULING:
        from airflow.triggers.base import BaseEventTrigger

        assert isinstance(watch.BatchFinishedTrigger(), BaseEventTrigger)
    else:
        with pytest.raises(AirflowException, match=r"event-driven scheduling .*Airflow 3\.0\+"):
            watch.BatchFinishedTrigger()


@pytest.mark.parametrize("bad", [(), ["IN_PROGRESS"], ["COMPLETED", "VALIDATING"], ["done"], None, 5])
def test_statuses_only_terminal_ones(bad):
    with pytest.raises(
        ValueError, match=r"statuses must be one or more of the terminal statuses .*CANCELLED"
    ):
        watch.checked_statuses(bad)


def test_statuses_normalised():
    assert watch.checked_statuses(["failed", "COMPLETED", "FAILED"]) == ("FAILED", "COMPLETED")
    assert watch.checked_statuses("expired") == ("EXPIRED",)


def test_since_is_an_iso_datetime_in_utc_or_none():
    assert watch.checked_since(None) is None
    assert watch.checked_since("2026-03-01T12:00:00") == "2026-03-01T12:00:00+00:00"
    assert watch.checked_since("2026-03-01T14:00:00+02:00") == "2026-03-01T12:00:00+00:00"
    assert watch.checked_since(T0) == "2026-03-01T12:00:00+00:00"
    with pytest.raises(ValueError, match="since must be None or an ISO-8601 datetime"):
        watch.checked_since("last tuesday")


def test_name_prefix_is_a_string_or_none():
    assert watch.checked_name_prefix("") is None
    with pytest.raises(ValueError, match="name_prefix must be a string or None"):
        watch.checked_name_prefix(3)


@needs_event_scheduling
def test_bad_arguments_fail_at_construction():
    with pytest.raises(ValueError, match="poll_interval"):
        watch.BatchFinishedTrigger(poll_interval=0)
    with pytest.raises(ValueError, match="statuses"):
        watch.BatchFinishedTrigger(statuses=["RUNNING"])
    with pytest.raises(ValueError, match="together_conn_id"):
        watch.BatchFinishedTrigger(together_conn_id=" ")


@needs_event_scheduling
def test_one_poll_per_connection_and_interval_one_watermark_per_selection():
    make = watch.BatchFinishedTrigger
    a, b = make(name_prefix="a-"), make(name_prefix="b-", statuses=["FAILED"])
    assert a.shared_stream_key() == b.shared_stream_key() == ("together-batches", "together_default", 60.0)
    assert make(poll_interval=30).shared_stream_key() != a.shared_stream_key()
    assert make(together_conn_id="other").shared_stream_key() != a.shared_stream_key()
    assert a.state_key != b.state_key
    # A changed interval keeps the watermark; a changed since starts a new one.
    assert make(name_prefix="a-", poll_interval=5).state_key == a.state_key
    assert make(name_prefix="a-", since="2026-01-01").state_key != a.state_key


def test_a_fresh_watermark_counts_the_starting_second_as_new():
    state = WatchState.fresh(T0 + timedelta(microseconds=700_000))
    assert state.is_new("b1", T0)
    assert not state.is_new("b0", T0 - timedelta(seconds=1))


def test_emitted_ids_are_not_new_and_old_ones_are_forgotten_behind_the_floor():
    state = WatchState.fresh(T0)
    state.mark("b1", T0 + timedelta(minutes=1))
    assert not state.is_new("b1", T0 + timedelta(minutes=1))
    assert state.is_new("b2", T0 + timedelta(minutes=1))
    later = T0 + LOOKBACK + timedelta(minutes=30)
    state.mark("b3", later)
    assert state.floor == later - LOOKBACK
    assert set(state.seen) == {"b3"}
    assert not state.is_new("b1", T0 + timedelta(minutes=1))  # behind the floor now


def test_watermark_json_round_trip_and_garbage():
    state = WatchState.fresh(T0)
    state.mark("b1", T0 + timedelta(seconds=5))
    again = WatchState.from_json(state.to_json())
    assert again == state
    for garbage in (None, "x", {}, {"floor": "not a time"}, {"floor": T0.isoformat(), "seen": {"b": "?"}}):
        assert WatchState.from_json(garbage) is None


def test_the_producer_writes_watermarks_only_for_cleanly_stored_polls():
    written = []

    def snapshot(name):
        async def commit():
            written.append(name)

        return SimpleNamespace(commits=[commit])

    def item(payload, failed=0, rejected=0):
        return SimpleNamespace(
            broker_payload=payload, outcome=SimpleNamespace(failed=failed, rejected=rejected)
        )

    clean, failed, rejected = snapshot("clean"), snapshot("failed"), snapshot("rejected")
    producer = BatchListProducer("c", 60.0)
    asyncio.run(producer.advance([item(clean), item(failed, failed=1), item(rejected, rejected=1)]))
    assert written == ["clean"]
    assert clean.commits == [] and failed.commits != []
