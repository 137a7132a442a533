"""DAGs for tests/integration/test_links.py: what the "Together batch" link reads as a submit ends.

run_conf: ``inputs``, the JSONL paths to submit (one for the plain DAG, two for the mapped one).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG

from together_provider.operators.batch import SubmitBatchOperator

with DAG(
    "together_links",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"inputs": [""]},
) as together_links:
    SubmitBatchOperator(task_id="submit", input_file_path="{{ params.inputs[0] }}")

with DAG(
    "together_links_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"inputs": ["", ""]},
) as together_links_mapped:
    SubmitBatchOperator.partial(task_id="submit").expand(
        input_file_path=["{{ params.inputs[0] }}", "{{ params.inputs[1] }}"]
    )
