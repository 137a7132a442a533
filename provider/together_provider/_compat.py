"""The one place that resolves Airflow names across 2.11 and 3.x.

Everything else imports Airflow through here, so a version difference is handled once. The
common-compat provider does the path lookups; this module only adds what it lacks.
"""

from __future__ import annotations

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
    XCom,
    conf,
    mask_secret,
)
from airflow.triggers.base import BaseTrigger, TriggerEvent

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
    "TriggerEvent",
    "XCom",
    "conf",
    "mask_secret",
]
