"""A killed task cancels the batch it owns; a triggerer restart cancels nothing."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from together_provider._compat import AIRFLOW_V_3_3_PLUS, AirflowFailException
from together_provider.client.models import BatchStatus
from together_provider.operators.batch import SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.triggers.batch import BatchStatusTrigger

from ..helpers import RecordingTI, write_requests
from .conftest import status_of


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="BaseTrigger.on_kill exists from Airflow 3.3")
def test_trigger_on_kill_cancels_when_it_owns_the_batch(running_batch):
    asyncio.run(BatchStatusTrigger(batch_id=running_batch, cancel_on_kill=True).on_kill())
    assert status_of(running_batch) is BatchStatus.CANCELLED


def test_trigger_without_ownership_never_cancels(running_batch):
    trigger = BatchStatusTrigger(batch_id=running_batch, cancel_on_kill=False)
    asyncio.run(trigger.on_kill())
    asyncio.run(trigger.cleanup())
    assert not status_of(running_batch).is_terminal


def test_triggerer_restart_cancels_nothing(running_batch):
    """cleanup() runs on every exit, a triggerer restart included: it must leave the batch running."""
    trigger = BatchStatusTrigger(batch_id=running_batch, cancel_on_kill=True, poll_interval=0.1)

    async def run_then_stop():
        task = asyncio.create_task(trigger.run().__anext__())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.cleanup()

    asyncio.run(run_then_stop())
    assert not status_of(running_batch).is_terminal


def test_operator_on_kill_cancels_its_batch_while_waiting_on_the_worker(together_conn, emu, tmp_path):
    src = write_requests(tmp_path / "killme.jsonl", n=1, model="emulator/never-finish")
    op = SubmitBatchOperator(
        task_id="submit",
        input_file_path=str(src),
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.2,
    )
    ti = RecordingTI()

    def kill_once_submitted():
        deadline = time.monotonic() + 10
        while "batch_id" not in ti.xcoms and time.monotonic() < deadline:
            time.sleep(0.05)
        op.on_kill()

    # execute() stays on the main thread, as on a worker: Airflow 2's executor safeguard keeps
    # thread-local state that only the main thread has.
    killer = threading.Thread(target=kill_once_submitted)
    killer.start()
    try:
        with pytest.raises(AirflowFailException, match="ended CANCELLED"):
            op.execute({"ti": ti})
    finally:
        killer.join(10)
    assert status_of(ti.xcoms["batch_id"]) is BatchStatus.CANCELLED


def test_sensor_on_kill_leaves_a_batch_it_does_not_own(running_batch):
    BatchCompletionSensor(task_id="wait", batch_id=running_batch).on_kill()
    assert not status_of(running_batch).is_terminal
    BatchCompletionSensor(task_id="wait2", batch_id=running_batch, cancel_on_kill=True).on_kill()
    assert status_of(running_batch) is BatchStatus.CANCELLED


def test_deferred_submit_hands_ownership_to_the_trigger(together_conn, tmp_path, monkeypatch):
    """The trigger a deferred submit leaves behind, rebuilt from its stored kwargs as the triggerer
    does, cancels the batch (running until then) when the user kills the task."""
    from types import SimpleNamespace

    from together_provider._compat import TaskDeferred
    from together_provider.triggers import batch as trigger_module

    src = write_requests(tmp_path / "defer.jsonl", n=1, model="emulator/never-finish")
    op = SubmitBatchOperator(task_id="submit", input_file_path=str(src), wait_for_completion=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": ti})
    batch_id = ti.xcoms["batch_id"]
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["cancel_on_kill"] is True and kwargs["batch_id"] == batch_id
    trigger = BatchStatusTrigger(**kwargs)
    assert status_of(batch_id) in (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS), "cancellable"

    if AIRFLOW_V_3_3_PLUS:
        asyncio.run(trigger.on_kill())
    else:
        # Before 3.3 the kill is seen in cleanup(), as a task instance no longer deferred.
        async def failed(ti):
            return "failed"

        monkeypatch.setattr(trigger_module, "task_instance_state", failed)
        trigger.task_instance = SimpleNamespace(dag_id="d", task_id="submit", run_id="r", map_index=-1)
        asyncio.run(trigger.cleanup())
    assert status_of(batch_id) is BatchStatus.CANCELLED
