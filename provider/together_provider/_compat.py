"""The one place that resolves Airflow names across 2.11 and 3.x.

Everything else imports Airflow through here, so a version difference is handled once. The
common-compat provider does the path lookups; this module only adds what it lacks.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_3_PLUS,
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseHook,
    BaseOperator,
    BaseOperatorLink,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    TaskDeferred,
    XCom,
    conf,
    mask_secret,
)
from airflow.triggers.base import BaseTrigger, TriggerEvent


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
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "BaseHook",
    "BaseOperator",
    "BaseOperatorLink",
    "BaseSensorOperator",
    "BaseTrigger",
    "Context",
    "PokeReturnValue",
    "TaskDeferred",
    "TriggerEvent",
    "XCom",
    "conf",
    "mask_secret",
    "task_instance_state",
]
