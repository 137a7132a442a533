"""BatchStatusEndingTrigger (the sensor's end_from_trigger=True) against the emulator: a completed batch
ends the task in the triggerer with the sensor's XComs; every other outcome is the ordinary event, for
the worker's execute_complete to word and Airflow's retry rules to judge."""

from __future__ import annotations

import asyncio

import pytest

from together_provider import _compat
from together_provider.client.wait import XCOM_KEYS
from together_provider.tasks.start_in_triggerer import ENDING_TRIGGER_CLASS
from together_provider.triggers.ending import BatchStatusEndingTrigger

from .test_trigger import make_batch  # noqa: F401 - the fixture

TaskSuccessEvent = _compat.TaskSuccessEvent


async def events_of(trigger, limit=30.0):
    events = []
    async with asyncio.timeout(limit):
        async for event in trigger.run():
            events.append(event)
    return events


def test_a_completed_batch_ends_the_task_with_the_sensor_s_xcoms(make_batch):  # noqa: F811
    batch_id = make_batch()
    (event,) = asyncio.run(events_of(BatchStatusEndingTrigger(batch_id=batch_id, poll_interval=0.1)))
    assert isinstance(event, TaskSuccessEvent)
    assert set(event.xcoms) == {*XCOM_KEYS, "return_value"}
    assert event.xcoms["batch_id"] == batch_id and event.xcoms["status"] == "COMPLETED"
    assert event.xcoms["output_file_id"] and event.xcoms["error_file_id"] is None
    assert event.xcoms["return_value"] == {key: event.xcoms[key] for key in XCOM_KEYS}


@pytest.mark.parametrize(
    ("model", "status"), [("emulator/batch-fail", "FAILED"), ("emulator/batch-expire", "EXPIRED")]
)
def test_a_failed_batch_resumes_on_a_worker(make_batch, model, status):  # noqa: F811
    trigger = BatchStatusEndingTrigger(batch_id=make_batch(model=model), poll_interval=0.1)
    (event,) = asyncio.run(events_of(trigger))
    assert not isinstance(event, TaskSuccessEvent)
    assert event.payload["status"] == status and event.payload["error"]


@pytest.mark.parametrize("fail_on_request_errors", [False, True])
def test_request_errors_end_here_unless_they_fail_the_task(make_batch, fail_on_request_errors):  # noqa: F811
    batch_id = make_batch(model="emulator/request-error")
    trigger = BatchStatusEndingTrigger(
        batch_id=batch_id, poll_interval=0.1, fail_on_request_errors=fail_on_request_errors
    )
    (event,) = asyncio.run(events_of(trigger))
    if fail_on_request_errors:
        assert not isinstance(event, TaskSuccessEvent)
        assert event.payload["status"] == "COMPLETED" and event.payload["error_file_id"]
    else:
        assert isinstance(event, TaskSuccessEvent) and event.xcoms["error_file_id"]


def test_an_unknown_batch_resumes_on_a_worker(together_conn):
    (event,) = asyncio.run(events_of(BatchStatusEndingTrigger(batch_id="no-such-batch", poll_interval=0.1)))
    assert not isinstance(event, TaskSuccessEvent) and event.payload["status"] == "ERROR"


def test_serialize_round_trip():
    trigger = BatchStatusEndingTrigger(batch_id="b", poll_interval=5, fail_on_request_errors=True)
    classpath, kwargs = trigger.serialize()
    assert classpath == ENDING_TRIGGER_CLASS
    assert kwargs["fail_on_request_errors"] is True
    assert BatchStatusEndingTrigger(**kwargs).serialize() == (classpath, kwargs)
