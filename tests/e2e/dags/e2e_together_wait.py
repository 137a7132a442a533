"""One batch per run, for the e2e scenarios: submit the input file named in the run's conf, then wait.

    submit_batch ──> wait_for_batch

The harness writes a distinct input file per run and passes it as ``conf={"input_file": ...}``, so every
run waits on its own batch and the output can be matched to the run. ``submit_batch`` may retry once:
the scenario that kills the worker mid-submit checks that the retry does not create a second batch.
``conf={"conn_id": ...}`` picks another connection than ``together_default`` (the environment's).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor

POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "30"))
CONN_ID = "{{ dag_run.conf.get('conn_id') or 'together_default' }}"

with DAG(
    dag_id="e2e_together_wait",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Many runs wait at once; a deferred sensor holds no slot, so these limits must not be what caps them.
    max_active_runs=200,
    max_active_tasks=200,
    tags=["together", "e2e"],
) as dag:
    submit_batch = SubmitBatchOperator(
        task_id="submit_batch",
        input_file_path="{{ dag_run.conf['input_file'] }}",
        together_conn_id=CONN_ID,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    wait_for_batch = BatchCompletionSensor(
        task_id="wait_for_batch",
        batch_id=submit_batch.output,
        poll_interval=POLL_INTERVAL,
        together_conn_id=CONN_ID,
    )
