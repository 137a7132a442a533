"""DAGs submitting one input as several batches (SubmitBatchOperator(split=True)), for dag.test().

``together_split``: parts of at most 3 requests; the test makes the emulator refuse the third create
once, so the first try dies after part 2 and its retry must create only the rest.
``together_split_crash_after_store``: the first try dies after every part was created (and, on Airflow
3.3+, the list stored); the retry must return the same batches.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import SubmitBatchOperator


class CrashAfterStore(SubmitBatchOperator):
    """Dies on its first try after every part's batch was created."""

    def _submit(self, context):
        batches = super()._submit(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker crash after every part was submitted")
        return batches


def _dag(dag_id):
    return DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
        params={"input": "", "report": ""},
    )


@task
def report(**context):
    ti = context["ti"]
    got = {
        "returned": ti.xcom_pull(task_ids="submit"),
        "batch_ids": ti.xcom_pull(task_ids="submit", key="batch_ids"),
        "batch_id": ti.xcom_pull(task_ids="submit", key="batch_id"),
    }
    with open(context["params"]["report"], "w") as handle:
        json.dump(got, handle)


for dag_id, operator in (
    ("together_split", SubmitBatchOperator),
    ("together_split_crash_after_store", CrashAfterStore),
):
    with _dag(dag_id) as dag:
        (
            operator(
                task_id="submit", input_file_path="{{ params.input }}", split=True, max_requests_per_batch=3
            )
            >> report()
        )
    globals()[dag_id] = dag
