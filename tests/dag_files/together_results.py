"""DAGs for the dag.test() runs of BatchResultsOperator: submit and wait, land the rows, then a downstream
task (trigger_rule all_done) that reads the manifest from XCom and the rows from where they landed.

run_conf: ``input`` (JSONL path to submit), ``result`` (where the rows land), ``report`` (where the
downstream task writes what it read).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.operators.results import BatchResultsOperator

DEFAULTS = {"retries": 2, "retry_delay": timedelta(seconds=1)}


def _report_task():
    @task(trigger_rule="all_done")
    def report(**context):
        from together_provider._compat import ObjectStoragePath

        ti = context["ti"]
        manifest = ti.xcom_pull(task_ids="results", key="manifest")
        rows = []
        if manifest:
            with ObjectStoragePath(f"file://{manifest['result_uri']}").open("r") as handle:
                # readline, not iteration: Airflow 2.11's ObjectStoragePath handle cannot be iterated.
                rows = [json.loads(line) for line in iter(handle.readline, "")]
        got = {"manifest": manifest, "return_value": ti.xcom_pull(task_ids="results"), "rows": rows}
        with open(context["params"]["report"], "w") as handle:
            json.dump(got, handle)

    return report()


for variant, options in {
    "plain": {},
    "strict": {"fail_on_request_errors": True},
    "ratio": {"min_success_ratio": 0.9},
}.items():
    with DAG(
        f"together_results_{variant}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args=DEFAULTS,
        params={"input": "", "result": "", "report": ""},
    ) as dag:
        submit = SubmitBatchOperator(
            task_id="submit",
            input_file_path="{{ params.input }}",
            wait_for_completion=True,
            deferrable=False,
            poll_interval=0.2,
        )
        results = BatchResultsOperator(
            task_id="results", batch_id=submit.output, result_path="{{ params.result }}", **options
        )
        submit >> results >> _report_task()
    globals()[f"together_results_{variant}"] = dag
