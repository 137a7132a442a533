"""The one place that resolves Airflow names across 2.11 and 3.x.

Everything else imports Airflow through here, so a version difference is handled once. The
common-compat provider does the path lookups; this module only adds what it lacks.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_3_PLUS,
    AirflowException,
    AirflowFailException,
    AirflowNotFoundException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseOperator,
    BaseOperatorLink,
    Context,
    TaskDeferred,
    XCom,
    conf,
    mask_secret,
)
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import (
        BaseHook,
        BaseSensorOperator,
        ObjectStoragePath,
        PokeReturnValue,
    )
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

# Resolved on first use (see __getattr__): DAG files import the sensor and operators, and so this
# module, at every parse, and need none of these. The HTTP hook brings requests and aiohttp (workers
# and triggerers only); airflow.triggers.base was most of what this module cost a DAG file (make bench
# measures it, benchmarks/README.md item 3): only the trigger module, imported inside execute(), pays
# for it now. The sensor base is loaded by DAG files that use the sensor, not by the rest.
_SDK = "airflow.providers.common.compat.sdk"
_LAZY: dict[str, tuple[str, str]] = {
    "BaseHook": (_SDK, "BaseHook"),
    "BaseSensorOperator": (_SDK, "BaseSensorOperator"),
    "BaseTrigger": ("airflow.triggers.base", "BaseTrigger"),
    "HttpHook": ("airflow.providers.http.hooks.http", "HttpHook"),
    # The common.ai provider's batch surface, for together_provider.common_ai only (imported by its entry
    # point). Marked experimental upstream: a rename lands here, once.
    **{
        name: ("airflow.providers.common.ai.batch.base", name)
        for name in (
            "BatchAdapter",
            "BatchRequest",
            "BatchState",
            "BatchStatus",
            "ExtractedOutput",
            "RawResultItem",
            "SubmitResult",
        )
    },
    "OutputSpec": ("airflow.providers.common.ai.batch.output_schema", "OutputSpec"),
    "LLMBatchInputError": ("airflow.providers.common.ai.exceptions", "LLMBatchInputError"),
    "LLMBatchLimitExceededError": ("airflow.providers.common.ai.exceptions", "LLMBatchLimitExceededError"),
    # Only the OpenLineage provider's own calls reach this (together_provider.tasks.lineage).
    "OperatorLineage": ("airflow.providers.openlineage.extractors", "OperatorLineage"),
    # airflow.sdk.ObjectStoragePath on 3.x, airflow.io.path's on 2.11; only file-moving tasks need it.
    "ObjectStoragePath": (_SDK, "ObjectStoragePath"),
    "PokeReturnValue": (_SDK, "PokeReturnValue"),
    "TriggerEvent": ("airflow.triggers.base", "TriggerEvent"),
    # Airflow 2.10+; only a sensor with start_from_trigger=True builds one (start_in_triggerer.py).
    "StartTriggerArgs": ("airflow.triggers.base", "StartTriggerArgs"),
    # Airflow 2.10+; only BatchStatusEndingTrigger (end_from_trigger=True) yields one.
    "TaskSuccessEvent": ("airflow.triggers.base", "TaskSuccessEvent"),
}

# Airflow 3.0's execution API refuses a None XCom value: its task SDK posts no body for it and the
# API answers 422 "Field required", failing the task (3.1 accepts it; 2.x stores it). A key never
# pushed pulls as None on every version, so on 3.0 a None is simply not pushed.
XCOM_STORES_NONE = AIRFLOW_V_3_1_PLUS or not AIRFLOW_V_3_0_PLUS


def xcom_push(ti: Any, key: str, value: Any) -> None:
    """``ti.xcom_push`` that any supported Airflow accepts, None values included."""
    if value is None and not XCOM_STORES_NONE:
        return
    ti.xcom_push(key=key, value=value)


# Event-driven scheduling (AssetWatcher, BaseEventTrigger) arrived in Airflow 3.0.
EVENT_DRIVEN_SCHEDULING = AIRFLOW_V_3_0_PLUS


def _base_event_trigger() -> Any:
    """Airflow's BaseEventTrigger, or before 3.0 a stand-in that refuses to be built: a module defining
    an event trigger still imports there, and only using it fails, with a message saying why."""
    base = importlib.import_module("airflow.triggers.base")
    found = getattr(base, "BaseEventTrigger", None)
    if found is not None:
        return found

    class BaseEventTrigger(base.BaseTrigger):  # type: ignore[name-defined]
        def __init__(self, **kwargs: Any) -> None:
            raise AirflowException(
                f"{type(self).__name__} needs event-driven scheduling (AssetWatcher), which needs "
                "Airflow 3.0+; on Airflow 2 wait for a batch with BatchCompletionSensor instead"
            )

    return BaseEventTrigger


def __getattr__(name: str) -> Any:
    if name == "BaseEventTrigger":
        value = _base_event_trigger()
        globals()[name] = value
        return value
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


async def get_connection_async(conn_id: str, hook: Any = None) -> Any:
    """The connection ``conn_id`` from wherever Airflow keeps it, without blocking the event loop.

    common-compat's lookup is asynchronous where Airflow can look up asynchronously (3.3.2+) and a
    worker thread before that. One runner it cannot serve: the in-process one of ``dag.test()`` and
    ``airflow dags test`` hands triggers supervisor comms that answer only synchronously, so Airflow's
    own async lookup skips the metadata DB and reports a connection stored there as not defined. Only
    there, and only after the async lookup found nothing, the synchronous lookup runs in a thread: a
    real triggerer's comms answer asynchronously, so its loop never waits on a thread for this.
    """
    from airflow.providers.common.compat.connection import get_async_connection

    try:
        return await get_async_connection(conn_id, hook=hook)
    except AirflowNotFoundException:
        if not _supervisor_comms_are_sync_only():
            raise
    from airflow.providers.common.compat.sdk import BaseHook
    from asgiref.sync import sync_to_async

    return await sync_to_async((hook or BaseHook).get_connection)(conn_id)


def in_triggerer() -> bool:
    """True in the process where Airflow's triggerer runs triggers: Airflow 3's trigger runner (its
    supervisor comms are the runner's own) or Airflow 2's triggerer thread."""
    import threading

    # Both classes are Airflow's own, from the module the triggerer runs: a process that never
    # loaded it is no triggerer.
    triggerer = sys.modules.get("airflow.jobs.triggerer_job_runner")
    decoder = getattr(triggerer, "TriggerCommsDecoder", None)
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    if isinstance(decoder, type) and isinstance(comms, decoder):
        return True
    # Airflow 2's TriggerRunner is a thread; Airflow 3's is not, so this is False there.
    runner = getattr(triggerer, "TriggerRunner", None)
    return isinstance(runner, type) and isinstance(threading.current_thread(), runner)


def _supervisor_comms_are_sync_only() -> bool:
    # The comms live on the task runner module: a process that never imported it has none.
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return comms is not None and callable(getattr(comms, "send", None)) and not hasattr(comms, "asend")


async def task_instance_state(ti: Any) -> str | None:
    """The current state of a trigger's task instance, or None when it cannot be known.

    Used only before Airflow 3.3 (which has ``BaseTrigger.on_kill``), to tell a user's kill from a
    triggerer restart. Run in a thread: both lookups below are synchronous.
    """
    if ti is None:
        return None
    from asgiref.sync import sync_to_async

    def lookup() -> str | None:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

            states = RuntimeTaskInstance.get_task_states(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
            )
            found = states.get(ti.run_id, {})
            key = ti.task_id if ti.map_index in (None, -1) else f"{ti.task_id}_{ti.map_index}"
            value = found.get(key)
        else:
            from airflow.models.taskinstance import TaskInstance
            from airflow.utils.session import create_session

            with create_session() as session:
                row = (
                    session.query(TaskInstance.state)
                    .filter_by(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, map_index=ti.map_index)
                    .one_or_none()
                )
                value = row[0] if row else None
        return None if value is None else str(getattr(value, "value", value))

    try:
        return await sync_to_async(lookup)()
    except Exception:
        return None


__all__ = [
    "AIRFLOW_V_3_0_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "EVENT_DRIVEN_SCHEDULING",
    "XCOM_STORES_NONE",
    "AirflowException",
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseEventTrigger",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "HttpHook",
    "ObjectStoragePath",
    "PokeReturnValue",
    "TaskDeferred",
    "TriggerEvent",
    "XCom",
    "conf",
    "get_connection_async",
    "mask_secret",
    "task_instance_state",
    "xcom_push",
]
