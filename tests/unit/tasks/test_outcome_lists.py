"""What a list wait's ending means for the task: the lists pushed, then the failure naming the part."""

from __future__ import annotations

import pytest

from tests.helpers import RecordingTI
from together_provider._compat import AirflowException, AirflowFailException, AirflowSensorTimeout
from together_provider.client.errors import ServerError
from together_provider.client.models import BatchJob
from together_provider.client.wait import ListTracker
from together_provider.tasks.outcome import finish_list_wait


def job(batch_id, status, **fields):
    return BatchJob.from_api({"id": batch_id, "status": status, **fields})


def tracker(ids, **kwargs):
    return ListTracker(ids, 10.0, adaptive=False, jitter=lambda: 1.0, **kwargs)


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
