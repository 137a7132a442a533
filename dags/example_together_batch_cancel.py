"""Look a batch up and cancel it: a run that no longer needs the batch it submitted stops paying for it.

    submit_batch ──> get_batch ──> cancel_batch ──> report

``get_batch`` fetches the batch (``GetBatchOperator``): it returns the batch as a dict and pushes its
``status``, ``output_file_id`` and ``error_file_id``. ``cancel_batch`` (``CancelBatchOperator``) cancels it
while it is still validating or running; a batch that already finished is left as it is and the log says
so, so the task is safe to re-run. ``report`` prints what each saw.

Uses the ``together_default`` connection (password: your API key); ``airflow dags test
example_together_batch_cancel`` runs it against the bundled emulator the way ``make demo`` runs
``example_together_batch``. Against the real API it submits ``data/chat_requests.jsonl`` and cancels the
batch at once: whatever Together finished of it before the cancel stays in its output file.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.batch import CancelBatchOperator, GetBatchOperator, SubmitBatchOperator

INPUT_FILE = Path(__file__).parent / "data" / "chat_requests.jsonl"

with DAG(
    dag_id="example_together_batch_cancel",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["together", "example"],
    doc_md=__doc__,
) as dag:
    submit_batch = SubmitBatchOperator(task_id="submit_batch", input_file_path=str(INPUT_FILE))

    # [START howto_operator_together_get_batch]
    get_batch = GetBatchOperator(task_id="get_batch", batch_id=submit_batch.output)
    # [END howto_operator_together_get_batch]

    # [START howto_operator_together_cancel_batch]
    cancel_batch = CancelBatchOperator(task_id="cancel_batch", batch_id=submit_batch.output)
    # [END howto_operator_together_cancel_batch]

    @task
    def report(seen: dict, cancelled: dict) -> dict:
        """What the batch was when looked up, and what it is after the cancel."""
        print(
            f"Together batch {seen['id']} was {seen['status']} when looked up; "
            f"after the cancel it is {cancelled['status']}"
        )
        return {"batch_id": seen["id"], "seen": seen["status"], "after_cancel": cancelled["status"]}

    get_batch >> cancel_batch
    report(get_batch.output, cancel_batch.output)
