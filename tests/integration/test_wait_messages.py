"""What a waiting task tells the person reading its log: that it defers and how often it will poll, how
long it has waited, the files a finished batch left, a final status without a raw ``None``, and how to
create a missing connection."""

from __future__ import annotations

import asyncio
import re

import pytest

from together_provider._compat import AirflowFailException, TaskDeferred
from together_provider.client.wait import batch_event
from together_provider.hooks import loop_share
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import GetBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.triggers import log as trigger_log
from together_provider.triggers.batch import BatchListStatusTrigger, BatchStatusTrigger

from ..helpers import RecordingTI, VirtualTime, wait_terminal, write_requests


@pytest.fixture
def hook(together_conn):
    return TogetherHook()


def submitted(hook, path, model="test/model"):
    return hook.create_batch(hook.upload_file(write_requests(path, n=2, model=model)).id).id


def test_the_sensor_says_it_defers_and_how_often_it_polls(hook, tmp_path, task_logs):
    batch_id = submitted(hook, tmp_path / "w.jsonl", model="emulator/never-finish")
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch_id, poll_interval=40, timeout=3600)
    with pytest.raises(TaskDeferred):
        sensor.execute({"ti": RecordingTI()})
    assert (
        f"Deferring: the triggerer polls Together batch {batch_id} every 40 s (adaptive: 10-80 s, "
        "sooner near the end), for at most 3600 s; no worker slot is held meanwhile"
    ) in task_logs()
    hook.cancel_batch(batch_id)


def deferred_kwargs(sensor: BatchCompletionSensor) -> dict:
    """The kwargs the sensor's deferral stores for the triggerer."""
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": RecordingTI()})
    return deferred.value.trigger.serialize()[1]


def first_polls(cls, kwargs: dict, time: VirtualTime, stop_after: float) -> None:
    """The trigger the triggerer builds from ``kwargs``, run on ``time`` until ``stop_after`` seconds on,
    with every line it logged written."""

    async def scenario() -> None:
        loop_share.install(loop_share.LoopShare(clock=time.clock, sleep=time.sleep))
        trigger = cls(**kwargs, clock=time.clock, sleep=time.sleep)

        async def run() -> None:
            async for _ in trigger.run():
                return

        await time.gather(run(), stop_after=stop_after)
        await trigger_log.drained()

    asyncio.run(scenario())


def waited(logs: str, batch_id: str) -> list[int]:
    """The "waited N s" of each progress line the trigger logged for ``batch_id``."""
    line = rf"Together batch {re.escape(batch_id)}: [^;]*?, waited (\d+) s"
    return [int(n) for n in re.findall(line, logs)]


def test_waited_counts_from_when_the_task_deferred(hook, tmp_path, task_logs):
    """The triggerer takes the wait up 45 s after the task deferred (a busy or restarted triggerer):
    its first line already says 45 s, not 0, and the stored deadline counts from the same moment."""
    batch_id = submitted(hook, tmp_path / "w.jsonl", model="emulator/never-finish")
    try:
        sensor = BatchCompletionSensor(task_id="wait", batch_id=batch_id, poll_interval=40, timeout=3600)
        kwargs = deferred_kwargs(sensor)
        assert kwargs["waiting_since"] == kwargs["deadline"] - 3600
        task_logs()  # what the worker logged before deferring is not the trigger's
        first_polls(BatchStatusTrigger, kwargs, VirtualTime(start=kwargs["waiting_since"] + 45), 1.0)
    finally:
        hook.cancel_batch(batch_id)
    assert waited(task_logs(), batch_id) == [45]


def test_waited_counts_from_the_deferral_for_every_batch_of_a_list(hook, tmp_path, task_logs):
    ids = [submitted(hook, tmp_path / f"l{i}.jsonl", model="emulator/never-finish") for i in range(2)]
    try:
        sensor = BatchCompletionSensor(task_id="wait", batch_id=ids, poll_interval=40, timeout=3600)
        kwargs = deferred_kwargs(sensor)
        task_logs()
        first_polls(BatchListStatusTrigger, kwargs, VirtualTime(start=kwargs["waiting_since"] + 45), 1.0)
    finally:
        for batch_id in ids:
            hook.cancel_batch(batch_id)
    logs = task_logs()
    assert [waited(logs, batch_id) for batch_id in ids] == [[45], [45]]


def test_a_wait_stored_without_its_start_counts_from_its_first_poll(hook, tmp_path, task_logs):
    """A wait deferred by 0.1.0 (no ``waiting_since`` in its kwargs) still loads and says how long it
    waited, counted from when this trigger started: its first line says 0 s."""
    batch_id = submitted(hook, tmp_path / "o.jsonl", model="emulator/never-finish")
    try:
        sensor = BatchCompletionSensor(task_id="wait", batch_id=batch_id, poll_interval=40, timeout=3600)
        kwargs = deferred_kwargs(sensor)
        del kwargs["waiting_since"]
        task_logs()
        first_polls(BatchStatusTrigger, kwargs, VirtualTime(start=kwargs["deadline"] - 3600 + 45), 1.0)
    finally:
        hook.cancel_batch(batch_id)
    assert waited(task_logs(), batch_id) == [0]


def test_after_resuming_a_line_names_the_files(hook, tmp_path, task_logs):
    batch = wait_terminal(hook, submitted(hook, tmp_path / "c.jsonl"))
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch.id)
    sensor.execute_complete({"ti": RecordingTI()}, batch_event(batch))
    assert (
        f"Together batch {batch.id} ended COMPLETED: output file {batch.output_file_id}, no error file"
        in task_logs()
    )


def test_expired_names_no_raw_none(hook, tmp_path):
    batch = wait_terminal(hook, submitted(hook, tmp_path / "e.jsonl", model="emulator/batch-expire"))
    assert batch.error_file_id is None, "the case the message used to end in 'error file None'"
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch.id)
    with pytest.raises(AirflowFailException) as failed:
        sensor.execute_complete({"ti": RecordingTI()}, batch_event(batch))
    message = str(failed.value)
    assert message.startswith(f"Together batch {batch.id} ended EXPIRED: ")
    assert "None" not in message and message.endswith(", no error file)")


def test_a_missing_connection_says_how_to_create_it():
    with pytest.raises(AirflowFailException) as failed:
        GetBatchOperator(task_id="g", batch_id="b-1", together_conn_id="together_nosuch").execute(
            {"ti": RecordingTI()}
        )
    message = str(failed.value)
    assert message.startswith("connection 'together_nosuch': ")
    assert "airflow connections add together_nosuch --conn-type together" in message
    assert "AIRFLOW_CONN_TOGETHER_NOSUCH" in message
