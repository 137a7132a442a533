"""DAGs of the real_triggerer benchmark (benchmarks/real_triggerer.py copies this file into the e2e
stack's DAG folder). The batch ids come in each run's conf, so the DAG file never changes between runs.

- ``bench_rt_start``: one BatchCompletionSensor per run with ``start_from_trigger=True``: the scheduler
  defers it straight into the triggerer, which renders ``batch_id`` from the conf (Airflow 3.3+).
- ``bench_rt_end``: the same with ``end_from_trigger=True``: a completed batch ends the task in the
  triggerer, so no worker runs at all.
- ``bench_rt_mapped``: one run, a sensor mapped over ``conf["batch_ids"]``: each map index checks once on
  a worker and defers from there, the usual path.
- ``bench_rt_null``: the ``end`` DAG's shape with benchmarks.null_trigger.NullWaitTrigger in place of
  the sensor's trigger: Airflow's own cost per trigger, with none of the provider's code.
- ``bench_rt_openai``: the anchor, the openai provider's ``OpenAIBatchTrigger`` started in the triggerer
  (its kwargs cannot be templated, so every run waits on one stub batch); it resumes on a worker. Only
  the anchor phase's triggerer has the openai provider on its path.
- ``bench_rt_heartbeat``: one task deferring to benchmarks.heartbeat_trigger.HeartbeatTrigger, which
  records the triggerer loop's lag to ``conf["path"]`` until ``conf["stop_path"]`` exists.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, BaseOperator, task

from together_provider.sensors.batch import BatchCompletionSensor

POLL_INTERVAL = float(os.environ.get("BENCH_RT_POLL_INTERVAL", "20"))
# The emulator's batches show no progress, then all complete at once: adaptive polling stretches a
# wait's interval on exactly that history, so the completion-to-success target is measured without it.
ADAPTIVE = os.environ.get("BENCH_RT_ADAPTIVE", "0") == "1"
# Deferred sensors hold no slot; these limits must not be what caps the benchmark.
LIMITS: dict[str, Any] = {"max_active_runs": 20_000, "max_active_tasks": 20_000}


class _StartsInTriggerer(BaseOperator):
    """Its wait starts straight in the triggerer, as ``trigger_cls(**trigger_kwargs)``."""

    def __init__(self, *, trigger_cls: str, trigger_kwargs: dict[str, Any], **kwargs: Any) -> None:
        from airflow.triggers.base import StartTriggerArgs

        super().__init__(**kwargs)
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=trigger_cls,
            trigger_kwargs=trigger_kwargs,
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute(self, context: Any) -> None:
        raise RuntimeError("starts in the triggerer: never run on a worker")

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        return event


class NullWaitOperator(_StartsInTriggerer):
    """Starts in the triggerer and ends there, as the ``end`` DAG's sensor does."""

    template_fields = ("batch_id", "release_path")

    def __init__(self, *, batch_id: str, release_path: str, **kwargs: Any) -> None:
        trigger_kwargs = {"batch_id": batch_id, "release_path": release_path, "poll_interval": POLL_INTERVAL}
        super().__init__(
            trigger_cls="benchmarks.null_trigger.NullWaitTrigger", trigger_kwargs=trigger_kwargs, **kwargs
        )
        self.batch_id = batch_id
        self.release_path = release_path


class OpenAIWaitOperator(_StartsInTriggerer):
    """The anchor: OpenAIBatchTrigger, started in the triggerer; only the triggerer imports it."""

    def __init__(self, **kwargs: Any) -> None:
        trigger_kwargs = {
            "conn_id": "openai_bench",
            "batch_id": "batch-bench",
            "poll_interval": POLL_INTERVAL,
        }
        super().__init__(
            trigger_cls="airflow.providers.openai.triggers.openai.OpenAIBatchTrigger",
            trigger_kwargs={**trigger_kwargs, "timeout": 86_400.0},
            **kwargs,
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        if not isinstance(event, dict) or event.get("status") != "success":
            raise RuntimeError(f"the OpenAI batch did not complete: {event!r}")
        return event


class HeartbeatOperator(BaseOperator):
    template_fields = ("path", "stop_path")

    def __init__(self, *, path: str, stop_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.stop_path = stop_path

    def execute(self, context: Any) -> None:
        from benchmarks.heartbeat_trigger import HeartbeatTrigger

        self.defer(
            trigger=HeartbeatTrigger(path=self.path, stop_path=self.stop_path), method_name="execute_complete"
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        return event


with DAG(dag_id="bench_rt_start", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, **LIMITS):
    BatchCompletionSensor(
        task_id="wait",
        batch_id="{{ dag_run.conf['batch_id'] }}",
        poll_interval=POLL_INTERVAL,
        adaptive_polling=ADAPTIVE,
        start_from_trigger=True,
    )

with DAG(dag_id="bench_rt_end", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, **LIMITS):
    BatchCompletionSensor(
        task_id="wait",
        batch_id="{{ dag_run.conf['batch_id'] }}",
        poll_interval=POLL_INTERVAL,
        adaptive_polling=ADAPTIVE,
        start_from_trigger=True,
        end_from_trigger=True,
    )

with DAG(dag_id="bench_rt_mapped", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, **LIMITS):

    @task
    def batch_ids(**context: Any) -> list[str]:
        return list(context["dag_run"].conf["batch_ids"])

    BatchCompletionSensor.partial(
        task_id="wait", poll_interval=POLL_INTERVAL, adaptive_polling=ADAPTIVE
    ).expand(batch_id=batch_ids())

with DAG(dag_id="bench_rt_null", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, **LIMITS):
    NullWaitOperator(
        task_id="wait",
        batch_id="{{ dag_run.conf['batch_id'] }}",
        release_path="{{ dag_run.conf['release_path'] }}",
    )

with DAG(dag_id="bench_rt_openai", schedule=None, start_date=datetime(2026, 1, 1), catchup=False, **LIMITS):
    OpenAIWaitOperator(task_id="wait")

with DAG(dag_id="bench_rt_heartbeat", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    HeartbeatOperator(
        task_id="heartbeat", path="{{ dag_run.conf['path'] }}", stop_path="{{ dag_run.conf['stop_path'] }}"
    )
