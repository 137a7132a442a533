"""Run a Together batch end to end: submit a JSONL file, wait without holding a worker, read the results.

    submit_batch ──> wait_for_batch ──> download_output ──> summarize

``submit_batch`` validates ``data/chat_requests.jsonl`` (every rule of the Batch API, with line numbers),
uploads it and creates the batch. ``wait_for_batch`` defers to the triggerer and, once the batch is
COMPLETED, pushes ``output_file_id`` and ``error_file_id`` to XCom; a FAILED, EXPIRED or CANCELLED batch
fails it. ``download_output`` streams the output file to disk, and ``summarize`` reads it and fetches the
error file when some requests failed.

Uses the ``together_default`` connection (password: your API key). ``make demo`` runs this DAG against
the bundled emulator, no key needed.
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

INPUT_FILE = Path(__file__).parent / "data" / "chat_requests.jsonl"
# Together suggests polling every 30-60 s; the demo polls faster against its emulator.
POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "30"))
OUTPUT_DIR = os.environ.get(
    "TOGETHER_EXAMPLE_OUTPUT_DIR", os.path.join(tempfile.gettempdir(), "together-batches")
)

with DAG(
    dag_id="example_together_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
    doc_md=__doc__,
) as dag:
    submit_batch = SubmitBatchOperator(
        task_id="submit_batch",
        input_file_path=str(INPUT_FILE),
        endpoint="/v1/chat/completions",
    )

    wait_for_batch = BatchCompletionSensor(
        task_id="wait_for_batch",
        batch_id=submit_batch.output,
        poll_interval=POLL_INTERVAL,
    )

    download_output = DownloadBatchFileOperator(
        task_id="download_output",
        file_id="{{ ti.xcom_pull(task_ids='wait_for_batch', key='output_file_id') }}",
        path=OUTPUT_DIR + "/{{ dag_run.run_id | replace(':', '_') | replace('+', '_') }}/output.jsonl",
    )

    @task
    def summarize(output_path: str, **context) -> dict:
        """Count answers, show the first few, and report failed requests from the error file."""
        error_file_id = context["ti"].xcom_pull(task_ids="wait_for_batch", key="error_file_id")
        answers = []
        with open(output_path) as handle:
            for line in handle:
                record = json.loads(line)
                message = record["response"]["body"]["choices"][0]["message"]["content"]
                answers.append((record["custom_id"], message))
        answers.sort()
        errors = []
        if error_file_id:
            from together_provider.hooks.together import TogetherHook

            error_path = TogetherHook().download_file(
                error_file_id, Path(output_path).with_name("errors.jsonl")
            )
            with open(error_path) as handle:
                errors = [json.loads(line) for line in handle]
        print(f"Together batch results: {len(answers)} answers, {len(errors)} failed requests")
        for custom_id, message in answers[:3]:
            print(f"  {custom_id}: {message}")
        for error in errors[:3]:
            print(f"  failed {error['custom_id']}: {error['error'].get('message')}")
        return {"answers": len(answers), "errors": len(errors), "output_path": output_path}

    summary = summarize(download_output.output)

    submit_batch >> wait_for_batch >> download_output
