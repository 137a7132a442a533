"""DAGs for the dag.test() suite: one per wait style, fed by run_conf so one DAG covers every outcome.

run_conf: ``input`` (JSONL path to submit), ``report`` (where the downstream task writes what it got
through XCom), ``timeout`` is fixed per DAG since it is not a templated field.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor

POLL = 0.2
MODES = {
    "deferrable": {"deferrable": True},
    "poke": {"deferrable": False, "mode": "poke"},
    "reschedule": {"deferrable": False, "mode": "reschedule"},
}
DEFAULTS = {"retries": 2, "retry_delay": timedelta(seconds=1)}


def _report_task():
    @task(trigger_rule="all_done")
    def report(**context):
        ti = context["ti"]
        got = {
            key: ti.xcom_pull(task_ids="wait", key=key)
            for key in ("batch_id", "status", "output_file_id", "error_file_id")
        }
        got["return_value"] = ti.xcom_pull(task_ids="wait")
        got["batch_url"] = ti.xcom_pull(task_ids="wait", key="batch_url")
        with open(context["params"]["report"], "w") as handle:
            json.dump(got, handle)

    return report()


for mode, options in MODES.items():
    for variant, extra in {
        "plain": {},
        "soft": {"soft_fail": True},
        "timeout": {"timeout": 1.5},
        "strict": {"fail_on_request_errors": True},
    }.items():
        dag_id = f"together_{variant}_{mode}"
        with DAG(
            dag_id,
            schedule=None,
            start_date=datetime(2026, 1, 1),
            default_args=DEFAULTS,
            params={"input": "", "report": ""},
        ) as dag:
            submit = SubmitBatchOperator(task_id="submit", input_file_path="{{ params.input }}")
            options_for_mode = dict(options)
            if mode == "reschedule":
                options_for_mode["poke_interval"] = 0.2
            wait = BatchCompletionSensor(
                task_id="wait", batch_id=submit.output, poll_interval=POLL, **options_for_mode, **extra
            )
            submit >> wait >> _report_task()
        globals()[dag_id] = dag

    with DAG(
        f"together_submit_and_wait_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args=DEFAULTS,
        params={"input": "", "report": ""},
    ) as dag:
        (
            SubmitBatchOperator(
                task_id="wait",
                input_file_path="{{ params.input }}",
                wait_for_completion=True,
                deferrable=options["deferrable"],
                poll_interval=POLL,
            )
            >> _report_task()
        )
    globals()[f"together_submit_and_wait_{mode}"] = dag
