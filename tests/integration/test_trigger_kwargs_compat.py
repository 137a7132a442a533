"""Trigger kwargs are a stored contract: a wait deferred by release 0.1.0 sits in the metadata DB as a
classpath and these kwargs, and must still run after an upgrade. The kwargs below are written out
literally, exactly as 0.1.0's ``BatchStatusTrigger.serialize()`` produced them; never edit them to
match a newer release (add a new test for a new release's set instead)."""

from __future__ import annotations

import asyncio
import importlib
import inspect

import pytest

from together_provider.hooks.together import TogetherHook

from ..helpers import RecordingTI, write_requests

CLASSPATH_0_1_0 = "together_provider.triggers.batch.BatchStatusTrigger"
KWARGS_0_1_0 = {
    "batch_id": "REPLACED-BY-A-REAL-BATCH",
    "together_conn_id": "together_default",
    "poll_interval": 0.1,
    "deadline": None,
    "max_consecutive_failures": 5,
    "cancel_on_kill": False,
    "adaptive_polling": True,
}


def trigger_class():
    """Resolved from the stored classpath, as the triggerer does."""
    module_name, _, class_name = CLASSPATH_0_1_0.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


async def events_of(trigger):
    async with asyncio.timeout(30):  # a hang guard only
        return [event.payload async for event in trigger.run()]


def test_every_0_1_0_kwarg_is_still_accepted():
    """A renamed or removed kwarg fails here: waits stored by 0.1.0 would no longer load."""
    parameters = inspect.signature(trigger_class().__init__).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    missing = [name for name in KWARGS_0_1_0 if name not in parameters and not takes_any]
    assert missing == [], f"BatchStatusTrigger no longer accepts 0.1.0's kwargs {missing}"
    # And nothing new is required: a 0.1.0 wait has only these.
    required = [
        name
        for name, p in parameters.items()
        if name != "self"
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    ]
    assert set(required) <= set(KWARGS_0_1_0), f"new required kwargs {set(required) - set(KWARGS_0_1_0)}"


def test_0_1_0_kwargs_run_a_wait_to_its_event(together_conn, tmp_path):
    hook = TogetherHook(together_conn_id=together_conn)
    batch_id = hook.create_batch(hook.upload_file(write_requests(tmp_path / "compat.jsonl")).id).id
    trigger = trigger_class()(**(KWARGS_0_1_0 | {"batch_id": batch_id}))
    events = asyncio.run(events_of(trigger))
    assert [(e["status"], e["batch_id"]) for e in events] == [("COMPLETED", batch_id)]
    assert events[0]["output_file_id"]


def test_0_1_0_kwargs_with_a_passed_deadline_end_in_a_timeout(together_conn):
    # A 0.1.0 deadline is Unix time as a float; 1.0 is long past.
    trigger = trigger_class()(**(KWARGS_0_1_0 | {"batch_id": "b-0-1-0", "deadline": 1.0}))
    assert [e["status"] for e in asyncio.run(events_of(trigger))] == ["TIMEOUT"]


# Kwargs added since 0.1.0, each with a default (a 0.1.0 wait has none of them) and stored only when set.
ADDED_SINCE_0_1_0 = {"waiting_since"}


def test_a_wait_on_one_id_still_stores_0_1_0s_classpath_and_kwargs(running_batch):
    """A list wait defers to its own trigger class; a wait on one id (a string) stores what 0.1.0 did,
    with the same values, plus only kwargs added since with a default."""
    from together_provider._compat import TaskDeferred
    from together_provider.sensors.batch import BatchCompletionSensor

    sensor = BatchCompletionSensor(task_id="wait", batch_id=running_batch, poll_interval=0.1)
    try:
        with pytest.raises(TaskDeferred) as deferred:
            sensor.execute({"ti": RecordingTI()})
    finally:
        TogetherHook().cancel_batch(running_batch)
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == CLASSPATH_0_1_0
    assert kwargs["deadline"] is not None
    assert set(kwargs) - set(KWARGS_0_1_0) == ADDED_SINCE_0_1_0
    old = {name: kwargs[name] for name in KWARGS_0_1_0}
    assert old | {"deadline": None} == KWARGS_0_1_0 | {"batch_id": running_batch}
    parameters = inspect.signature(trigger_class().__init__).parameters
    assert all(parameters[name].default is None for name in ADDED_SINCE_0_1_0)


def test_0_1_0_kwargs_serialize_back_to_themselves():
    """A 0.1.0 wait that a newer triggerer loads and stores again keeps exactly 0.1.0's kwargs."""
    kwargs = KWARGS_0_1_0 | {"batch_id": "b-0-1-0"}
    assert trigger_class()(**kwargs).serialize() == (CLASSPATH_0_1_0, kwargs)
