"""The list wait's decisions without I/O: reading the ids a task was given, the ending a ListTracker
picks, what the ending means for the task, and the worst status of a merged result set."""

from __future__ import annotations

import pytest
from tests.helpers import RecordingTI

from together_provider._compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from together_provider.client.errors import ServerError
from together_provider.client.models import BatchJob
from together_provider.client.results import merge_parts, worst_status
from together_provider.list_wait import ListTracker, batch_ids_of, finish_list_wait


def job(batch_id, status, **fields):
    return BatchJob.from_api({"id": batch_id, "status": status, **fields})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("b-1", "b-1"),
        (" b-1 ", "b-1"),
        (["b-1", "b-2"], ["b-1", "b-2"]),
        (("b-1",), ["b-1"]),
        ("['b-1', 'b-2']", ["b-1", "b-2"]),
        ('["b-1", "b-2"]', ["b-1", "b-2"]),
        ([" b-1 "], ["b-1"]),
    ],
)
def test_ids_read_from_what_a_template_rendered(value, expected):
    assert batch_ids_of(value, "batch_id") == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([], "batch_id is an empty list"),
        ("[]", "batch_id is an empty list"),
        ([None], "batch_id[0] must be a non-empty string: give a Together id"),
        (["b", ".."], "batch_id[1] is only dots, which a URL would read as a relative path"),
        (["b\r\nINFO forged"], "batch_id[0] holds control characters"),
        (".", "batch_id is only dots"),
        (["b", {"id": "c"}], "batch_id[1] must be a non-empty string"),
        (["b", "b"], "batch_id lists batch 'b' twice"),
        ("[b", "batch_id looks like a list"),
        ("None", "batch_id must be a non-empty string"),
    ],
)
def test_bad_ids_are_refused_naming_the_field(value, words):
    with pytest.raises(ValueError, match="batch_id") as refused:
        batch_ids_of(value, "batch_id")
    assert words in str(refused.value)


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


def test_finish_pushes_the_lists_then_fails_naming_the_part():
    t = tracker(["a", "b", "c"])
    t.answered(job("a", "COMPLETED", output_file_id="oa"), 0.0)
    ti = RecordingTI()
    with pytest.raises(AirflowFailException) as failed:
        finish_list_wait({"ti": ti}, t.answered(job("b", "FAILED", error="boom"), 0.0))
    assert "Together batch b (2 of 3) ended FAILED: boom; left 1 running: c" in str(failed.value)
    assert ti.xcoms["statuses"] == ["COMPLETED", "FAILED", None]
    assert ti.xcoms["output_file_ids"] == ["oa", None, None]


def test_finish_timeout_and_retryable_error():
    t = tracker(["a"], deadline=1.0)
    with pytest.raises(AirflowSensorTimeout):
        finish_list_wait({"ti": RecordingTI()}, t.before_poll(2.0))
    t = tracker(["a"], max_consecutive_failures=1)
    event = t.failed("a", ServerError("503", status_code=503), 0.0)
    with pytest.raises(AirflowException) as raised:
        finish_list_wait({"ti": RecordingTI()}, event)
    assert not isinstance(raised.value, AirflowFailException), "a retry may fix polling errors"


def test_request_errors_in_a_completed_list():
    t = tracker(["a", "b"])
    t.answered(job("a", "COMPLETED", error_file_id="ea"), 0.0)
    event = t.answered(job("b", "COMPLETED"), 0.0)
    assert finish_list_wait({"ti": RecordingTI()}, event)["error_file_ids"] == ["ea", None]
    with pytest.raises(AirflowFailException, match="a: ea"):
        finish_list_wait({"ti": RecordingTI()}, event, fail_on_request_errors=True)


def test_worst_status_and_merge_across_parts():
    assert worst_status(["COMPLETED", "COMPLETED"]) == "COMPLETED"
    assert worst_status(["COMPLETED", "CANCELLED", "EXPIRED"]) == "EXPIRED"
    assert worst_status(["FAILED", "EXPIRED", "COMPLETED"]) == "FAILED"
    parts = [
        ("p1", [{"custom_id": "x"}, {"custom_id": "y"}]),
        ("p2", [{"custom_id": "y"}, {"custom_id": "z"}]),
    ]
    assert [r["custom_id"] for r in merge_parts(parts)] == ["x", "y", "z"]
