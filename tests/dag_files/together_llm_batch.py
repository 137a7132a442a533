"""DAGs for the dag.test() runs of common.ai's @task.llm_batch and LLMBatchOperator on Together (the
emulator). Defined only where apache-airflow-providers-common-ai is installed: elsewhere this file holds
no DAG and imports nothing of common.ai.

``TOGETHER_LLM_BATCH_RESULTS`` (read at parse) is the directory URL the results and common.ai's state
land under; each test points it at its own temporary directory.
"""

# No "from __future__ import annotations": pydantic resolves Sentiment's annotations in this module's
# namespace, which a file loaded outside sys.modules (the DAG processor, load_dag) does not offer.
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from airflow.providers.common.compat.sdk import DAG, task

try:
    from airflow.providers.common.ai.operators.llm_batch import LLMBatchOperator
except ImportError:  # common.ai is an optional extra: no DAGs here without it
    LLMBatchOperator = None

MODEL = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"
RESULTS = os.environ.get("TOGETHER_LLM_BATCH_RESULTS") or Path(tempfile.gettempdir()).as_uri()
RESULT_PATH = RESULTS.rstrip("/") + "/{{ dag.dag_id }}"
REVIEWS = ["The soup was cold.", "Lovely staff, great view.", "It was fine."]
# The shortest poll common.ai allows. The tests set the emulator's clock so a batch is finished by the
# first status check, which comes before any sleep.
POLL = 30
COMMON = {"llm_conn_id": "together_default", "result_path": RESULT_PATH, "poll_interval": POLL}
START = datetime(2025, 1, 1)

if LLMBatchOperator is not None:
    from pydantic import BaseModel

    class Sentiment(BaseModel):
        label: Literal["positive", "negative", "neutral"]
        score: int
        summary: str

    with DAG("together_llm_batch_decorator", schedule=None, start_date=START, catchup=False) as decorator_dag:

        @task.llm_batch(model_id=MODEL, deferrable=True, **COMMON)
        def text(reviews: list[str]) -> list[str]:
            return [f"Summarize: {review}" for review in reviews]

        @task.llm_batch(model_id=MODEL, output_type=Sentiment, deferrable=False, **COMMON)
        def structured(reviews: list[str]) -> list[str]:
            return reviews

        text(REVIEWS)
        structured(REVIEWS)

    with_error = [REVIEWS[0], {"prompt": REVIEWS[1], "model": "together:emulator/request-error"}, REVIEWS[2]]

    with DAG("together_llm_batch_operator", schedule=None, start_date=START, catchup=False) as operator_dag:
        LLMBatchOperator(task_id="text", requests=REVIEWS, model_id=MODEL, **COMMON)
        LLMBatchOperator(
            task_id="structured",
            requests=REVIEWS,
            model_id=MODEL,
            output_type=Sentiment,
            deferrable=True,
            **COMMON,
        )
        LLMBatchOperator(task_id="tolerant", requests=with_error, model_id=MODEL, **COMMON)
        LLMBatchOperator(
            task_id="strict", requests=with_error, model_id=MODEL, fail_on_partial_error=True, **COMMON
        )

    with DAG(
        "together_llm_batch_batch_outcomes", schedule=None, start_date=START, catchup=False
    ) as outcomes_dag:
        LLMBatchOperator(
            task_id="failed", requests=REVIEWS, model_id="together:emulator/batch-fail", **COMMON
        )
        LLMBatchOperator(
            task_id="expired",
            requests=[*REVIEWS[:2], {"prompt": REVIEWS[2], "model": "together:emulator/batch-expire"}],
            model_id=MODEL,
            **COMMON,
        )

    # A retry of a try that lost the create's answer: the test makes the emulator create the batch and
    # then drop the connection, once.
    with DAG(
        "together_llm_batch_reattach",
        schedule=None,
        start_date=START,
        catchup=False,
        default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    ) as reattach_dag:
        LLMBatchOperator(
            task_id="classify", requests=REVIEWS, model_id=MODEL, output_type=Sentiment, **COMMON
        )
