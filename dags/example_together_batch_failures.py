"""A batch that ends FAILED or EXPIRED fails its DAG run, loudly, and the partial results stay reachable.

    make_input ──> submit_batch ──> wait_strict ──┐
                                 └> wait_soft ────┴─> report_partial_results ─> fail_run_if_batch_failed

``wait_strict`` fails without retries (a finished batch cannot change), naming the batch, its status and
Together's reason. ``wait_soft`` is the ``soft_fail=True`` variant: it is skipped instead, for pipelines
where a failed batch is not an incident. ``report_partial_results`` runs either way (``all_done``) and
shows the output and error file ids that Together keeps for failed and expired batches.

Against the bundled emulator, the model names ``emulator/batch-fail`` and ``emulator/batch-expire`` make
a batch end FAILED or EXPIRED on purpose; choose with the ``outcome`` param (``fail`` or ``expire``).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor

POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "30"))
MODELS = {"fail": "emulator/batch-fail", "expire": "emulator/batch-expire"}

with DAG(
    dag_id="example_together_batch_failures",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
    params={"outcome": "fail"},
    doc_md=__doc__,
) as dag:

    @task
    def make_input(**context) -> str:
        """Write a small request file whose model makes the emulator end the batch as asked."""
        model = MODELS[context["params"]["outcome"]]
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            for i in range(4):
                body = {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}
                handle.write(json.dumps({"custom_id": f"q{i}", "body": body}) + "\n")
        return handle.name

    submit_batch = SubmitBatchOperator(task_id="submit_batch", input_file_path=make_input())

    # [START howto_sensor_together_batch_completion_failures]
    wait_strict = BatchCompletionSensor(
        task_id="wait_strict",
        batch_id=submit_batch.output,
        poll_interval=POLL_INTERVAL,
        retries=2,  # not used: a FAILED or EXPIRED batch fails the task at once, for good
    )

    wait_soft = BatchCompletionSensor(
        task_id="wait_soft",
        batch_id=submit_batch.output,
        poll_interval=POLL_INTERVAL,
        soft_fail=True,
    )
    # [END howto_sensor_together_batch_completion_failures]

    # [START howto_sensor_together_partial_results]
    # One XCom for the dict: pushed key by key (what a dict return means), Airflow 3.0 refuses None values.
    @task(trigger_rule="all_done", multiple_outputs=False)
    def report_partial_results(**context) -> dict:
        ti = context["ti"]
        found = {
            key: ti.xcom_pull(task_ids="wait_strict", key=key)
            for key in ("status", "output_file_id", "error_file_id")
        }
        print(
            f"Batch ended {found['status']}; partial output file {found['output_file_id']}, "
            f"error file {found['error_file_id']}"
        )
        return found

    # [END howto_sensor_together_partial_results]

    @task(trigger_rule="one_failed", retries=0)
    def fail_run_if_batch_failed() -> None:
        """The run's state comes from its last tasks: without this, a successful report would hide
        the failed batch and mark the whole run successful."""
        raise RuntimeError("the Together batch did not complete; see wait_strict's log for the reason")

    report = report_partial_results()
    submit_batch >> [wait_strict, wait_soft] >> report
    [wait_strict, report] >> fail_run_if_batch_failed()
