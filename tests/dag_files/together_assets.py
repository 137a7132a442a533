"""DAGs whose Together tasks update an asset: the dag.test() suite reads the asset events they leave.

run_conf: ``input`` (JSONL path to submit), ``results`` (where the results DAG lands its rows).
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.assets import Asset, AssetAlias
from airflow.providers.common.compat.sdk import DAG

from together_provider.operators.batch import SubmitBatchOperator
from together_provider.operators.results import BatchResultsOperator
from together_provider.sensors.batch import BatchCompletionSensor

POLL = 0.2
SENSOR_ASSET = Asset("together://tests/sensor-results")
SUBMIT_ASSET = Asset("together://tests/submit-results")
RESULTS_ASSET = Asset("together://tests/landed-results")

for mode, options in {"deferrable": {"deferrable": True}, "poke": {"deferrable": False}}.items():
    with DAG(
        f"together_assets_sensor_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params={"input": ""},
    ) as dag:
        submit = SubmitBatchOperator(task_id="submit", input_file_path="{{ params.input }}")
        BatchCompletionSensor(
            task_id="wait",
            batch_id=submit.output,
            poll_interval=POLL,
            outlets=[SENSOR_ASSET, AssetAlias("together-tests-alias")],
            **options,
        )
    globals()[dag.dag_id] = dag

    with DAG(
        f"together_assets_submit_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        params={"input": ""},
    ) as dag:
        SubmitBatchOperator(
            task_id="submit",
            input_file_path="{{ params.input }}",
            wait_for_completion=True,
            poll_interval=POLL,
            outlets=[SUBMIT_ASSET],
            **options,
        )
    globals()[dag.dag_id] = dag

with DAG(
    "together_assets_results",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    params={"input": "", "results": ""},
) as dag:
    submit = SubmitBatchOperator(
        task_id="submit", input_file_path="{{ params.input }}", wait_for_completion=True, poll_interval=POLL
    )
    BatchResultsOperator(
        task_id="results",
        batch_id=submit.output,
        result_path="{{ params.results }}",
        outlets=[RESULTS_ASSET],
    )
