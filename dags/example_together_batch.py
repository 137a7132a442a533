"""Run a Together batch end to end: submit a JSONL file, wait without holding a worker, land the results
as data in object storage, and read them back.

    submit_batch ──> wait_for_batch ──> batch_results ──> summarize

``submit_batch`` validates ``data/chat_requests.jsonl`` (every rule of the Batch API, with line numbers),
uploads it and creates the batch. ``wait_for_batch`` defers to the triggerer and succeeds once the batch
is COMPLETED; a FAILED, EXPIRED or CANCELLED batch fails it. ``batch_results`` streams the batch's output
and error files and writes one JSONL row per request (``succeeded``, ``errored`` or ``missing``, with the
answer or the error and its token usage) to ``results.jsonl`` under ``TOGETHER_EXAMPLE_RESULTS_URL``, and
returns a small manifest (counts, usage, where the rows are). ``summarize`` takes that manifest and reads
the rows back through ``ObjectStoragePath``, so it works on whichever worker it runs: nothing is read
from another task's local disk.

``TOGETHER_EXAMPLE_RESULTS_URL`` is any URL Airflow's ``ObjectStoragePath`` understands; the default is
``file://`` under the temp dir, which needs nothing installed but holds only where every task runs on one
machine. For S3, install ``airflow-provider-together[s3]`` and set e.g.
``s3://aws_default@my-bucket/together-batches`` (the part before ``@`` is an Airflow AWS connection,
looked up when ``batch_results`` runs, never when this file is parsed).

Uses the ``together_default`` connection (password: your API key). ``make demo`` runs this DAG against
the bundled emulator, no key needed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, task

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.operators.results import BatchResultsOperator
from together_provider.sensors.batch import BatchCompletionSensor

INPUT_FILE = Path(__file__).parent / "data" / "chat_requests.jsonl"
# Together suggests polling every 30-60 s; the demo polls faster against its emulator.
POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "30"))
# A URL, not an ObjectStoragePath: BatchResultsOperator builds the path when the task runs, so parsing
# this file looks up no connection (an ObjectStoragePath builds its filesystem, and so reads the
# connection before '@', as soon as it is made).
RESULTS_URL = os.environ.get(
    "TOGETHER_EXAMPLE_RESULTS_URL", "file://" + os.path.join(tempfile.gettempdir(), "together-batches")
).rstrip("/")
# Run ids hold ':' and '+', which some stores and URL parsers treat specially.
RUN_FOLDER = "{{ dag_run.run_id | replace(':', '_') | replace('+', '_') }}"
# How many answers (and failed requests) summarize prints.
SHOWN = 3


def _how_many_shown(total: int) -> str:
    return f"the first {SHOWN} of {total}" if total > SHOWN else f"all {total}"


with DAG(
    dag_id="example_together_batch",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
    doc_md=__doc__,
) as dag:
    # [START howto_operator_together_submit]
    submit_batch = SubmitBatchOperator(
        task_id="submit_batch",
        input_file_path=str(INPUT_FILE),
        endpoint="/v1/chat/completions",
    )
    # [END howto_operator_together_submit]

    # [START howto_sensor_together_batch_completion]
    wait_for_batch = BatchCompletionSensor(
        task_id="wait_for_batch",
        batch_id=submit_batch.output,
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_sensor_together_batch_completion]

    # [START howto_operator_together_batch_results]
    batch_results = BatchResultsOperator(
        task_id="batch_results",
        batch_id=submit_batch.output,
        result_path=f"{RESULTS_URL}/{RUN_FOLDER}/results.jsonl",
    )
    # [END howto_operator_together_batch_results]

    # [START howto_operator_together_read_results]
    @task
    def summarize(manifest: dict) -> dict:
        """Read the landed rows back from the store: count them by status and show a few answers."""
        seen: Counter[str] = Counter()
        answers, failures = [], []
        with ObjectStoragePath(manifest["result_uri"]).open("r") as rows:
            # readline, not iteration: Airflow 2.11 wraps the file in an object that is not iterable.
            for line in iter(rows.readline, ""):
                row = json.loads(line)
                seen[row["status"]] += 1
                if row["status"] == "succeeded":
                    answer = row["response"]["choices"][0]["message"]["content"]
                    answers.append((row["custom_id"], answer))
                else:
                    error = (row.get("error") or {}).get("message")
                    failures.append((row["custom_id"], row["status"], error))
        counts = {status: seen[status] for status in ("succeeded", "errored", "missing")}
        counts["total"] = sum(seen.values())
        tokens = (manifest.get("usage") or {}).get("total_tokens", 0)
        print(
            f"Together batch results: {counts['succeeded']} answers, {counts['errored']} failed requests, "
            f"{counts['missing']} missing, {tokens} tokens; read {counts['total']} rows from "
            f"{manifest['result_uri']}"
        )
        # A few of each, saying how many of how many: the line above counts every row read.
        if answers:
            print(f"Together batch answers, {_how_many_shown(len(answers))}:")
        for custom_id, message in sorted(answers)[:SHOWN]:
            print(f"  {custom_id}: {message}")
        if failures:
            print(f"Together batch failed requests, {_how_many_shown(len(failures))}:")
        for custom_id, status, message in sorted(failures)[:SHOWN]:
            print(f"  failed {custom_id} ({status}): {message}")
        return {"counts": counts, "result_uri": manifest["result_uri"], "manifest_counts": manifest["counts"]}

    summarize(batch_results.output)
    # [END howto_operator_together_read_results]

    submit_batch >> wait_for_batch >> batch_results
