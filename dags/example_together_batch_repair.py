"""Land a batch's results, then send again the requests that failed for a reason a retry can fix, or that
never came back, until none is left or the rounds run out.

    make_input ──> submit_batch ──> wait ──> land_and_repair ──> summarize

``land_and_repair`` (``BatchResultsOperator(retry_failed_requests=2)``) lands one row per request, picks
the requests that are missing or errored with an error a retry can fix (429, 5xx, timeouts, "overloaded";
never a 400, a bad key or a context too long), submits them as a new batch, waits in the triggerer, merges
their rows into the landed ones, and repeats. Every row names its ``round`` and ``batch_id``; the manifest
lists the rounds.

Against the bundled emulator, the model ``emulator/request-flaky`` fails a request's first answer with a
503 and answers it in the next batch; ``emulator/request-error`` fails for good (a 400): the first is
repaired in round 1, the second is never sent again (param ``emulated``, on by default where
``TOGETHER_BASE_URL`` is set). Results land under ``TOGETHER_EXAMPLE_RESULTS_URL``
(a local folder or an object storage URL; default: the system's temp folder).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.operators.results import BatchResultsOperator
from together_provider.sensors.batch import BatchCompletionSensor

POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "30"))
RESULTS_URL = os.environ.get("TOGETHER_EXAMPLE_RESULTS_URL") or os.path.join(
    tempfile.gettempdir(), "together"
)
MODEL = os.environ.get("TOGETHER_EXAMPLE_MODEL", "meta-llama/Llama-3.3-70B-Instruct-Turbo")

with DAG(
    dag_id="example_together_batch_repair",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
    # Whether to ask the emulator for a request that fails once and one that fails for good.
    params={"emulated": bool(os.environ.get("TOGETHER_BASE_URL"))},
    doc_md=__doc__,
) as dag:

    @task
    def make_input(**context) -> str:
        """Four questions; against the emulator, one fails once and one fails for good."""
        emulated = bool(context["params"]["emulated"])
        models = [MODEL, MODEL, "emulator/request-flaky" if emulated else MODEL]
        models.append("emulator/request-error" if emulated else MODEL)
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            for i, model in enumerate(models):
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": f"Name a prime above {10 * i}."}],
                }
                handle.write(json.dumps({"custom_id": f"q{i}", "body": body}) + "\n")
        return handle.name

    submit_batch = SubmitBatchOperator(task_id="submit_batch", input_file_path=make_input())
    wait = BatchCompletionSensor(task_id="wait", batch_id=submit_batch.output, poll_interval=POLL_INTERVAL)

    # [START howto_operator_together_repair]
    land_and_repair = BatchResultsOperator(
        task_id="land_and_repair",
        batch_id=submit_batch.output,
        result_path=f"{RESULTS_URL}/{{{{ run_id | replace(':', '_') | replace('+', '_') }}}}/repaired.jsonl",
        retry_failed_requests=2,
        poll_interval=POLL_INTERVAL,
    )
    # [END howto_operator_together_repair]

    @task
    def summarize(manifest: dict) -> dict:
        for line in manifest["rounds"]:
            print(
                f"round {line['round']}: {line['requests']} requests to {', '.join(line['batch_ids'])}: "
                f"{line['succeeded']} succeeded, {line['errored']} errored, {line['missing']} missing"
            )
        print(f"final: {manifest['counts']} at {manifest['result_uri']}")
        return manifest["counts"]

    wait >> land_and_repair
    summarize(land_and_repair.output)
