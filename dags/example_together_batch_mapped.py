"""One batch per input file, mapped: submit each file, wait for each batch, download each output.

    list_input_files ──> submit_batch[i] ──> wait_for_batch[i] ──> download_output[i] ──> summarize

Every file in ``data/mapped/`` becomes its own batch (dynamic task mapping: one mapped task instance per
file, decided at run time). Each ``wait_for_batch`` returns a dict (``batch_id``, ``status``,
``output_file_id``, ``error_file_id``), and ``download_output`` maps over what those returned:

    file_id=wait_for_batch.output.map(lambda result: result["output_file_id"])

Airflow cannot map over a custom XCom key (``XComArg(wait, key="output_file_id")`` fails when the DAG
is parsed), so the file ids are taken from the sensor's return value instead. ``summarize`` reduces the
downloaded files into one count.

Uses the ``together_default`` connection, like ``example_together_batch``; ``airflow dags test
example_together_batch_mapped`` runs it against the bundled emulator the way ``make demo`` runs that one.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import DownloadBatchFileOperator, SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor

INPUT_DIR = Path(__file__).parent / "data" / "mapped"
# Together suggests polling every 30-60 s; the demo polls faster against its emulator.
POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "30"))
OUTPUT_DIR = os.environ.get(
    "TOGETHER_EXAMPLE_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "together-batches")
)

with DAG(
    dag_id="example_together_batch_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_together_submit_mapped]
    @task
    def list_input_files() -> list[str]:
        """The files to submit, one batch each; listed when the run starts, not when the DAG is parsed."""
        return [str(path) for path in sorted(INPUT_DIR.glob("*.jsonl"))]

    submit_batch = SubmitBatchOperator.partial(
        task_id="submit_batch", endpoint="/v1/chat/completions"
    ).expand(input_file_path=list_input_files())
    # [END howto_operator_together_submit_mapped]

    # [START howto_sensor_together_batch_completion_mapped]
    wait_for_batch = BatchCompletionSensor.partial(
        task_id="wait_for_batch", poll_interval=POLL_INTERVAL
    ).expand(batch_id=submit_batch.output)
    # [END howto_sensor_together_batch_completion_mapped]

    # [START howto_operator_together_download]
    download_output = DownloadBatchFileOperator.partial(
        task_id="download_output",
        path=OUTPUT_DIR
        + "/{{ dag_run.run_id | replace(':', '_') | replace('+', '_') }}/output-{{ ti.map_index }}.jsonl",
    ).expand(file_id=wait_for_batch.output.map(lambda result: result["output_file_id"]))
    # [END howto_operator_together_download]

    @task
    def summarize(output_paths: list[str]) -> dict:
        """Count the answers of every batch."""
        counts = {}
        # By index, not by iterating: iteration asks for the item past the end, which Airflow 3 logs as
        # an "XCom not found" error.
        for path in (output_paths[i] for i in range(len(output_paths))):
            with open(path) as handle:
                counts[Path(path).name] = sum(1 for line in handle if json.loads(line).get("response"))
        total = sum(counts.values())
        print(f"Together mapped batches: {len(counts)} batches, {total} answers")
        for name, count in sorted(counts.items()):
            print(f"  {name}: {count} answers")
        return {"batches": len(counts), "answers": total}

    summarize(download_output.output)
