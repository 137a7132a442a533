"""One DAG with every task path an error can reach, each task on ids of its own from ``params``: the
error-path table (tests/integration/test_error_paths.py) runs it once per error."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG

from together_provider.operators.batch import (
    CancelBatchOperator,
    DownloadBatchFileOperator,
    GetBatchOperator,
    SubmitBatchOperator,
)
from together_provider.sensors.batch import BatchCompletionSensor

POLL = 0.2
SENSOR_MODES = {
    "sensor_deferrable": {"deferrable": True},
    "sensor_poke": {"deferrable": False, "mode": "poke"},
    "sensor_reschedule": {"deferrable": False, "mode": "reschedule", "poke_interval": POLL},
}
# Each task reads its ids from params["id_<name>"] (a bare "get" would name the dict's own method).
PATHS = ("get", "cancel", "download", "input", "out", *SENSOR_MODES)

with DAG(
    "together_error_paths",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args={"retries": 2, "retry_delay": timedelta(seconds=0.5)},
    params={f"id_{path}": "" for path in PATHS},
) as dag:
    GetBatchOperator(task_id="get", batch_id="{{ params.id_get }}")
    CancelBatchOperator(task_id="cancel", batch_id="{{ params.id_cancel }}")
    DownloadBatchFileOperator(
        task_id="download", file_id="{{ params.id_download }}", path="{{ params.id_out }}"
    )
    SubmitBatchOperator(task_id="submit", input_file_path="{{ params.id_input }}")
    for deferrable in (True, False):
        SubmitBatchOperator(
            task_id=f"submit_wait_{'deferrable' if deferrable else 'poke'}",
            input_file_path="{{ params.id_input }}",
            wait_for_completion=True,
            deferrable=deferrable,
            poll_interval=POLL,
        )
    for task_id, options in SENSOR_MODES.items():
        BatchCompletionSensor(
            task_id=task_id, batch_id="{{ params.id_" + task_id + " }}", poll_interval=POLL, **options
        )
