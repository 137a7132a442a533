"""A killed LLMBatchOperator cancels its Together batch: from the trigger when deferred (the triggerer
calls on_kill on Airflow 3.3+), from the operator when it waits on the worker."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import COMMON_AI, SKIP_REASON, rows_at

pytest.importorskip(COMMON_AI, reason=SKIP_REASON)

from airflow.providers.common.ai.exceptions import LLMBatchCancelledError
from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator

from together_provider._compat import TaskDeferred
from together_provider.client.models import BatchStatus
from together_provider.hooks.together import TogetherHook

from ..helpers import RecordingTI

NEVER = "together:emulator/never-finish"
REVIEWS = ["The soup was cold.", "Lovely staff, great view.", "It was fine."]


def operator(conn_id, tmp_path, **kwargs):
    return LLMBatchOperator(
        task_id="classify",
        requests=REVIEWS,
        model_id=NEVER,
        llm_conn_id=conn_id,
        result_path=tmp_path.as_uri(),
        poll_interval=30,
        **kwargs,
    )


def status_of(batch_id):
    return TogetherHook().get_batch(batch_id).status


def test_a_killed_deferred_task_cancels_its_batch_and_the_cancelled_rows_land(together_conn, emu, tmp_path):
    op = operator(together_conn, tmp_path, deferrable=True)
    ti = RecordingTI()
    context = {"ti": ti, "task_instance": ti}
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    trigger = deferred.value.trigger
    batch_id = ti.xcoms["batch_id"]
    assert trigger.batch_id == batch_id and trigger.cancel_on_kill

    async def wait_then_kill():
        waiting = asyncio.create_task(trigger.run().__anext__())
        # Kill once the trigger has checked the batch once and gone to sleep until the next check.
        while not emu.requests_log(method="GET", path=f"/v1/batches/{batch_id}"):
            assert not waiting.done(), "the trigger ended before it was killed"
            await asyncio.sleep(0.05)
        await trigger.on_kill()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(wait_then_kill())
    assert status_of(batch_id) is BatchStatus.CANCELLED

    # The triggerer hands the task a cancelled event; the task lands what there is and fails.
    event = {"status": "cancelled", "batch_id": batch_id, "counts": None, "message": ""}
    with pytest.raises(LLMBatchCancelledError, match="cancelled before 3 of 3 requests completed"):
        operator(together_conn, tmp_path, deferrable=True).execute_complete(context, event)
    (landed,) = tmp_path.glob("*.jsonl")
    assert [row["status"] for row in rows_at(landed.as_uri())] == ["cancelled"] * 3


def test_a_killed_task_waiting_on_the_worker_cancels_its_batch(together_conn, emu, tmp_path):
    def running_batch(task_id):
        # Submitted through a deferrable twin: a real running batch, without the sync wait's sleep.
        ti = RecordingTI()
        ti.task_id = task_id
        with pytest.raises(TaskDeferred):
            operator(together_conn, tmp_path, deferrable=True).execute({"ti": ti, "task_instance": ti})
        return ti.xcoms["batch_id"]

    owned, other = running_batch("owned"), running_batch("other")
    killed = operator(together_conn, tmp_path, deferrable=False)
    killed.batch_id = owned
    killed.on_kill()
    assert status_of(owned) is BatchStatus.CANCELLED
    kept = operator(together_conn, tmp_path, deferrable=False, cancel_on_kill=False)
    kept.batch_id = other
    kept.on_kill()
    assert not status_of(other).is_terminal
