"""DAGs whose submit task dies right after Together created the batch, to prove a retry reuses it.

``crash_after_create``: the worker dies between the create call's answer and anything after it (so
not even Airflow 3.3's task state store heard of the batch); the retry must find it on the server.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor


class CrashAfterCreate(SubmitBatchOperator):
    """Dies on its first try the moment Together answers the create call."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            real_create = self.hook.create_batch

            def create_then_die(*args, **kwargs):
                real_create(*args, **kwargs)
                raise RuntimeError("simulated worker crash right after the batch was created")

            self.hook.create_batch = create_then_die
        return super().execute(context)


class CrashAfterStore(SubmitBatchOperator):
    """Dies on its first try after the batch id reached the task state store (Airflow 3.3+)."""

    def _submit(self, context):
        batch = super()._submit(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after the batch id was stored")
        return batch


def _report(submit, wait):
    @task
    def report(**context):
        ti = context["ti"]
        got = {
            "batch_id": ti.xcom_pull(task_ids="submit"),
            "status": ti.xcom_pull(task_ids="wait", key="status"),
        }
        with open(context["params"]["report"], "w") as handle:
            json.dump(got, handle)

    submit >> wait >> report()


def _dag(dag_id):
    return DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
        params={"input": "", "report": ""},
    )


for force_new in (False, True):
    dag_id = "together_crash_after_create" + ("_force_new" if force_new else "")
    with _dag(dag_id) as dag:
        submit = CrashAfterCreate(task_id="submit", input_file_path="{{ params.input }}", force_new=force_new)
        _report(submit, BatchCompletionSensor(task_id="wait", batch_id=submit.output, poll_interval=0.2))
    globals()[dag_id] = dag

with _dag("together_crash_after_store") as together_crash_after_store:
    submit = CrashAfterStore(task_id="submit", input_file_path="{{ params.input }}")
    _report(submit, BatchCompletionSensor(task_id="wait", batch_id=submit.output, poll_interval=0.2))
