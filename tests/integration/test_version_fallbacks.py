"""What stands in for 3.x-only features on older Airflow, checked on whichever version runs the tests.

| feature | where Airflow has it | before that |
| --- | --- | --- |
| async connection lookup | non-blocking ``aget_connection``: 3.3.2+ | ``get_connection`` in a thread |
| trigger ``on_kill`` | 3.3+ | ``cleanup()`` cancels only once the task instance is no longer deferred |
| task state store | 3.3+ | the batch is found on Together by the run-stable key in its file's name |
| a None XCom value | 2.x, 3.1+ | not pushed on 3.0 (pulling the key gives None all the same) |

The task state store's fallback is exercised by test_resubmission.py on every version.
"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

from together_provider import _compat
from together_provider._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from together_provider.client.models import BatchStatus
from together_provider.hooks.together import TogetherHook
from together_provider.triggers import batch as trigger_module
from together_provider.triggers.batch import BatchStatusTrigger

from ..conftest import TEST_KEY, load_dag
from ..helpers import write_requests
from .conftest import status_of


def masks_asynchronously() -> bool:
    """Airflow 3.3.2+ reads a connection on the event loop itself (``Connection.aextra_dejson``)."""
    from airflow.providers.common.compat.sdk import Connection

    return hasattr(Connection, "aextra_dejson")


class ThreadRecordingHook(TogetherHook):
    threads: list[int] = []

    @classmethod
    def get_connection(cls, conn_id):
        cls.threads.append(threading.get_ident())
        return super().get_connection(conn_id)


def test_async_connection_lookup_keeps_off_the_event_loop(together_conn, emu):
    ThreadRecordingHook.threads = []
    hook = ThreadRecordingHook()

    async def resolve():
        loop_thread = threading.get_ident()
        try:
            settings = await hook.asettings()
            batches = await hook.alist_batches()
        finally:
            await hook.aclose()
        return loop_thread, settings, batches

    loop_thread, settings, batches = asyncio.run(resolve())
    assert settings.api_key == TEST_KEY and settings.base_url.startswith(emu.url)
    assert isinstance(batches, list)
    # Whichever path this version takes, the blocking lookup never runs on the loop's thread.
    assert loop_thread not in ThreadRecordingHook.threads
    if not masks_asynchronously():
        assert len(ThreadRecordingHook.threads) == 1, "expected the worker-thread fallback"


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="3.3+ cancels from BaseTrigger.on_kill instead")
@pytest.mark.parametrize(("state", "cancelled"), [("failed", True), ("success", True), ("deferred", False)])
def test_cleanup_cancels_only_after_a_user_acted(running_batch, monkeypatch, state, cancelled):
    """Before 3.3 a trigger cannot tell a kill from a triggerer restart except by its task instance:
    still deferred means the triggerer is going away and the batch must keep running."""

    async def state_of(ti):
        return state

    monkeypatch.setattr(trigger_module, "task_instance_state", state_of)
    trigger = BatchStatusTrigger(batch_id=running_batch, cancel_on_kill=True)
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1)
    asyncio.run(trigger.cleanup())
    assert (status_of(running_batch) is BatchStatus.CANCELLED) is cancelled


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="3.3+ cancels from BaseTrigger.on_kill instead")
def test_cleanup_cancels_nothing_when_the_state_is_unknown(running_batch):
    trigger = BatchStatusTrigger(batch_id=running_batch, cancel_on_kill=True)
    trigger.task_instance = SimpleNamespace(dag_id="no", task_id="such", run_id="task", map_index=-1)
    asyncio.run(trigger.cleanup())
    assert not status_of(running_batch).is_terminal


@pytest.mark.skipif(AIRFLOW_V_3_0_PLUS, reason="Airflow 3 asks the triggerer's supervisor (see e2e)")
def test_task_instance_state_reads_the_metadata_db_on_airflow_2(airflow_db, together_conn, tmp_path):
    src = write_requests(tmp_path / "state.jsonl", n=1)
    dag = load_dag(airflow_db, "together_outcomes.py", "together_plain_poke")
    dag_run = dag.test(run_conf={"input": str(src), "report": str(tmp_path / "r.json")})
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id="wait", run_id=dag_run.run_id, map_index=-1)
    assert asyncio.run(_compat.task_instance_state(ti)) == "success"
    missing = SimpleNamespace(dag_id=dag.dag_id, task_id="nope", run_id=dag_run.run_id, map_index=-1)
    assert asyncio.run(_compat.task_instance_state(missing)) is None


def test_task_instance_state_without_a_task_instance_is_unknown():
    assert asyncio.run(_compat.task_instance_state(None)) is None


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2 reads the metadata DB directly")
def test_task_instance_state_outside_a_triggerer_is_unknown_on_airflow_3():
    """Without the triggerer's supervisor to ask, the answer is "unknown", which cancels nothing."""
    ti = SimpleNamespace(dag_id="d", task_id="t", run_id="r", map_index=-1)
    assert asyncio.run(_compat.task_instance_state(ti)) is None
