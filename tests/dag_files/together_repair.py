"""DAGs for the dag.test() runs of a repair (BatchResultsOperator(retry_failed_requests=N)): a batch made
in the test is landed, its failed requests sent again, and a downstream task (trigger_rule all_done)
writes the manifest it reads from XCom.

run_conf: ``batch_id`` (the batch to land), ``result`` (where the rows land), ``report`` (what the
downstream task read).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.results import BatchResultsOperator


class CrashAfterRoundCreate(BatchResultsOperator):
    """Dies on its first try right after its repair round's batch was created: a worker lost mid-round."""

    def execute(self, context):
        if context["ti"].try_number == 1:
            real_create = self.hook.create_batch

            def create_then_die(*args, **kwargs):
                real_create(*args, **kwargs)
                raise RuntimeError("simulated worker crash right after the round's batch was created")

            self.hook.create_batch = create_then_die
        return super().execute(context)


def _report():
    @task(trigger_rule="all_done")
    def report(**context):
        ti = context["ti"]
        got = {
            "manifest": ti.xcom_pull(task_ids="results", key="manifest"),
            "return_value": ti.xcom_pull(task_ids="results"),
        }
        with open(context["params"]["report"], "w") as handle:
            json.dump(got, handle)

    return report()


# The table's repair resumes from the trigger like the first: the round is merged into the table landed
# before the task deferred, read back from result_path.
TABLE = {"result_format": "parquet", "prices": {"test/model": {"input": 1.0, "output": 2.0}}}

for dag_id, operator, options in (
    ("together_repair_deferred", BatchResultsOperator, {}),
    ("together_repair_crash", CrashAfterRoundCreate, {"deferrable": False}),
    ("together_repair_table", BatchResultsOperator, TABLE),
):
    with DAG(
        dag_id,
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
        params={"batch_id": "", "result": "", "report": ""},
    ) as dag:
        (
            operator(
                task_id="results",
                batch_id="{{ params.batch_id }}",
                result_path="{{ params.result }}",
                retry_failed_requests=2,
                poll_interval=0.2,
                **options,
            )
            >> _report()
        )
    globals()[dag_id] = dag
