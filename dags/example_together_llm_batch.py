"""Together behind Airflow's own ``@task.llm_batch``: classify reviews at batch prices, results as data.

    classify_reviews ──> tally

``classify_reviews`` is common.ai's ``@task.llm_batch`` with ``model_id="together:<model>"``: the function
returns the prompts, and common.ai submits them as one Together batch (through this provider's
``TogetherBatchAdapter``), waits for it in the triggerer, and lands one JSONL row per review under
``result_path``, each ``output`` validated against ``Sentiment``. The task's XCom is common.ai's manifest
(where the rows are, and how many succeeded, errored, expired...). ``tally`` reads the rows back
through ``ObjectStoragePath``.

Needs ``airflow-provider-together[common-ai]`` (apache-airflow-providers-common-ai); without it this
file defines no DAG. Uses the ``together_default`` connection (password: your API key).
``TOGETHER_EXAMPLE_RESULTS_URL`` is where results land (default ``file://`` under the temp dir) and
``TOGETHER_EXAMPLE_MODEL`` the model.
"""

# No "from __future__ import annotations" here: pydantic reads Sentiment's annotations when the task
# runs, and a DAG file is not a module it can look them up in.
import importlib.util
import json
import os
import tempfile
from collections import Counter
from datetime import datetime
from typing import Literal

from airflow.providers.common.compat.sdk import DAG, ObjectStoragePath, task

COMMON_AI = importlib.util.find_spec("airflow.providers.common.ai") is not None
MODEL = os.environ.get("TOGETHER_EXAMPLE_MODEL", "meta-llama/Llama-3.3-70B-Instruct-Turbo")
RESULTS_URL = os.environ.get(
    "TOGETHER_EXAMPLE_RESULTS_URL", "file://" + os.path.join(tempfile.gettempdir(), "together-llm-batch")
)
# Run ids hold ':' and '+', which some stores and URL parsers treat specially.
RUN_FOLDER = "{{ dag_run.run_id | replace(':', '_') | replace('+', '_') }}"
REVIEWS = [
    "The room was spotless and the staff went out of their way to help.",
    "Two hours for a cold pizza. Never again.",
    "It was fine, nothing special.",
]

if COMMON_AI:
    from pydantic import BaseModel

    class Sentiment(BaseModel):
        label: Literal["positive", "negative", "neutral"]
        summary: str

    with DAG(
        dag_id="example_together_llm_batch",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["together", "example", "common-ai"],
        doc_md=__doc__,
    ) as dag:
        # [START howto_decorator_together_llm_batch]
        @task.llm_batch(
            llm_conn_id="together_default",
            model_id=f"together:{MODEL}",
            result_path=f"{RESULTS_URL.rstrip('/')}/{RUN_FOLDER}",
            system_prompt="Classify the sentiment of the hotel review and summarize it in one sentence.",
            output_type=Sentiment,
            # Together batches take minutes to hours; common.ai polls every poll_interval (at least 30 s).
            poll_interval=60,
            deferrable=True,
        )
        def classify_reviews(reviews: list[str]) -> list[str]:
            return reviews

        # [END howto_decorator_together_llm_batch]

        @task
        def tally(manifest: dict) -> dict:
            labels: Counter[str] = Counter()
            with ObjectStoragePath(manifest["result_uri"]).open("r") as handle:
                # readline: Airflow 2.11's ObjectStoragePath.open returns a wrapper that is not iterable.
                for line in iter(handle.readline, ""):
                    row = json.loads(line)
                    labels[row["output"]["label"] if row["status"] == "success" else row["status"]] += 1
            print(f"Together batch {manifest['batch_id']}: {dict(labels)} ({manifest['result_uri']})")
            return {"labels": dict(labels), "counts": manifest["counts"]}

        tally(classify_reviews(REVIEWS))
