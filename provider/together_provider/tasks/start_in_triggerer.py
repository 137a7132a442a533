"""``start_from_trigger`` for BatchCompletionSensor: the wait starts in the triggerer, with no worker run
before it. Airflow (2.10+) reads the trigger's class and kwargs from the serialized DAG and the scheduler
defers the task straight away, so the kwargs are what the DAG file wrote: nothing is computed at run
time except Jinja, which the triggerer renders from Airflow 3.3 on.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Any

TRIGGER_CLASS = "together_provider.triggers.batch.BatchStatusTrigger"
ENDING_TRIGGER_CLASS = "together_provider.triggers.ending.BatchStatusEndingTrigger"
_TEMPLATE_MARKERS = ("{{", "{%", "{#")


def _templated(value: Any) -> bool:
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def start_trigger_args(task: Any, start_from_trigger: bool = True) -> Any | None:
    """The ``StartTriggerArgs`` the sensor's wait starts with, or None when it has to start on a worker
    as usual (a templated field on Airflow before 3.3, said in a warning). Raises ValueError for what
    can never start in the triggerer, naming the field and the fix. With ``task.end_from_trigger`` the
    trigger also ends a completed wait (triggers/ending.py)."""
    from together_provider import _compat

    ending = bool(getattr(task, "end_from_trigger", False))
    if ending and not start_from_trigger:
        raise ValueError(
            "end_from_trigger=True needs start_from_trigger=True: only a wait started in the "
            "triggerer ends there; set both, or neither"
        )
    if ending and getattr(task, "outlets", None):
        raise ValueError(
            "end_from_trigger=True cannot be used with outlets: Airflow marks the task successful "
            "from the triggerer, where no asset event is emitted; drop outlets or end_from_trigger"
        )
    if not task.deferrable:
        raise ValueError(
            "start_from_trigger=True needs deferrable=True: the wait starts in the triggerer, "
            "so it cannot poke on a worker; drop one of the two"
        )
    if not isinstance(task.batch_id, str):
        raise ValueError(
            "batch_id must be one batch id or a Jinja template string with start_from_trigger=True, "
            f"got {type(task.batch_id).__name__}: the trigger is built from the DAG file's values "
            "before any upstream task runs, so an XComArg or a list cannot start there; use "
            "start_from_trigger=False for those"
        )
    try:
        start_args = _compat.StartTriggerArgs
    except AttributeError:  # pragma: no cover - Airflow before 2.10
        raise ValueError("start_from_trigger=True needs Airflow 2.10 or later") from None
    templated = [name for name in ("batch_id", "together_conn_id") if _templated(getattr(task, name))]
    if templated and not _compat.AIRFLOW_V_3_3_PLUS:
        warnings.warn(
            f"start_from_trigger=True with a templated {' and '.join(templated)} needs Airflow 3.3 or "
            f"later (before, the triggerer does not render templates); task {task.task_id!r} starts on "
            "a worker and defers from there instead",
            UserWarning,
            stacklevel=3,
        )
        return None
    kwargs = {"fail_on_request_errors": bool(task.fail_on_request_errors)} if ending else {}
    return start_args(
        trigger_cls=ENDING_TRIGGER_CLASS if ending else TRIGGER_CLASS,
        trigger_kwargs={
            **kwargs,
            "batch_id": task.batch_id,
            "together_conn_id": task.together_conn_id,
            "poll_interval": task.poll_interval,
            # No absolute deadline can be written in a DAG file: Airflow's trigger timeout (below)
            # fails the task instead, counted from when the scheduler deferred it.
            "deadline": None,
            "max_consecutive_failures": task.max_consecutive_failures,
            "cancel_on_kill": task.cancel_on_kill,
            "adaptive_polling": task.adaptive_polling,
        },
        next_method="execute_complete",
        next_kwargs=None,
        timeout=timedelta(seconds=float(task.timeout)),
    )
