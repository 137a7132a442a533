"""A wait's decisions without I/O: one batch's WaitTracker, and the ending a ListTracker picks for many."""

from __future__ import annotations

import pytest

from together_provider.client.errors import ServerError
from together_provider.client.models import BatchJob
from together_provider.client.wait import ListTracker


def job(batch_id, status, **fields):
    return BatchJob.from_api({"id": batch_id, "status": status, **fields})


def tracker(ids, **kwargs):
    return ListTracker(ids, 10.0, adaptive=False, jitter=lambda: 1.0, **kwargs)


def test_all_completed_ends_with_the_lists_in_the_given_order():
    t = tracker(["a", "b"])
    assert t.answered(job("b", "COMPLETED", output_file_id="ob"), 0.0) is None
    assert t.answered(job("a", "IN_PROGRESS"), 0.0) is None
    assert t.due_ids(5.0) == [] and t.due_ids(10.0) == ["a"], "a finished batch is not polled again"
    event = t.answered(job("a", "COMPLETED", output_file_id="oa", error_file_id="ea"), 10.0)
    assert event["status"] == "COMPLETED" and event["batch_ids"] == ["a", "b"]
    assert event["output_file_ids"] == ["oa", "ob"] and event["error_file_ids"] == ["ea", None]


def test_the_first_failure_ends_the_wait_and_later_answers_keep_it():
    t = tracker(["a", "b", "c"])
    event = t.answered(job("b", "EXPIRED", error="too slow"), 0.0)
    assert (event["status"], event["batch_id"], event["error"]) == ("EXPIRED", "b", "too slow")
    later = t.answered(job("c", "FAILED"), 0.0)
    assert later["batch_id"] == "b" and later["statuses"] == [None, "EXPIRED", "FAILED"]
    assert t.to_cancel(False) == [] and t.to_cancel(True) == ["a"]
    t.was_cancelled(job("a", "CANCELLING"))
    assert t.event()["cancelled"] == ["a"] and t.event()["running"] == []


def test_a_part_that_completed_before_its_cancel_is_not_reported_cancelled():
    t = tracker(["a", "b"])
    t.answered(job("b", "FAILED"), 0.0)
    t.was_cancelled(job("a", "COMPLETED"))
    assert t.event()["cancelled"] == [] and t.event()["running"] == []


def test_polling_errors_and_timeouts_cancel_nothing():
    t = tracker(["a", "b"], max_consecutive_failures=1)
    event = t.failed("a", ServerError("502 from the gateway", status_code=502), 0.0)
    assert event["status"] == "ERROR" and event["retryable"] and t.to_cancel(True) == []
    t = tracker(["a", "b"], deadline=5.0)
    t.answered(job("a", "COMPLETED"), 0.0)
    event = t.before_poll(5.0)
    assert event["status"] == "TIMEOUT" and "b" in event["error"] and t.to_cancel(True) == []


def test_next_sleep_is_to_the_earliest_due_poll():
    t = tracker(["a", "b"])
    assert t.next_sleep(0.0) == 0.0, "nothing polled yet: all due now"
    t.answered(job("a", "IN_PROGRESS"), 0.0)
    t.answered(job("b", "IN_PROGRESS"), 3.0)
    assert t.next_sleep(4.0) == pytest.approx(6.0)


def test_a_finished_batch_gets_no_time_left_estimate():
    from together_provider.client.models import BatchJob
    from together_provider.client.wait import WaitTracker

    tracker = WaitTracker("b", 60.0, jitter=lambda: 1.0)
    for now, status, progress in [(0.0, "IN_PROGRESS", 20), (100.0, "IN_PROGRESS", 60)]:
        assert (
            tracker.answered(BatchJob.from_api({"id": "b", "status": status, "progress": progress}), now)
            is None
        )
    assert tracker.seconds_left == pytest.approx(100.0)  # 40 % per 100 s, 40 % to go
    event = tracker.answered(BatchJob.from_api({"id": "b", "status": "FAILED", "progress": 60}), 110.0)
    assert event is not None and event["status"] == "FAILED"
    assert tracker.seconds_left is None


def test_the_wait_sleeps_within_its_bounds():
    from together_provider.client.wait import WaitTracker

    tracker = WaitTracker("b", 60.0, deadline=1000.0, jitter=lambda: 1.0)
    assert tracker.next_sleep(0.0) == 60.0
    assert tracker.next_sleep(0.0, age=15.0) == 45.0  # counted from when the shared answer was fetched
    assert tracker.next_sleep(0.0, age=59.0) == 6.0  # never down to nothing
    assert tracker.next_sleep(990.0) == 10.0  # never past the deadline
    assert tracker.before_poll(1000.0)["status"] == "TIMEOUT"
