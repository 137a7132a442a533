"""DAGs for waits on many batches: mapped sensors, one sensor on a list, and results merged across a list.

``make`` stands in for a split submit: it creates one batch per entry of ``params.parts`` on the
emulator through TogetherHook and returns their ids in order, as ``SubmitBatchOperator(split=True)`` does.
A part is ``{"prefix": <custom_id prefix>, "n": <requests>, "model": <model>, "extra": [<raw lines>]}``.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.operators.results import BatchResultsOperator
from together_provider.sensors.batch import BatchCompletionSensor

POLL = 0.2
MODES = {
    "deferrable": {"deferrable": True},
    "poke": {"deferrable": False, "mode": "poke"},
    "reschedule": {"deferrable": False, "mode": "reschedule", "poke_interval": POLL},
}
DEFAULTS = {"retries": 2, "retry_delay": timedelta(seconds=1)}
PARAMS = {"parts": [], "result": ""}


@task
def make(**context) -> list[str]:
    from together_provider.hooks.together import TogetherHook

    hook = TogetherHook()
    ids = []
    folder = Path(tempfile.mkdtemp(prefix="together-list-wait-"))
    for index, part in enumerate(context["params"]["parts"]):
        path = folder / f"part-{index}.jsonl"
        with open(path, "w") as handle:
            for i in range(int(part.get("n", 2))):
                body = {"model": part["model"], "messages": [{"role": "user", "content": f"q {index}.{i}"}]}
                handle.write(json.dumps({"custom_id": f"{part['prefix']}{i}", "body": body}) + "\n")
            for line in part.get("extra", ()):
                handle.write(json.dumps(line) + "\n")
        ids.append(hook.create_batch(hook.upload_file(path).id).id)
    return ids


for mode, options in MODES.items():
    with DAG(
        f"together_list_mapped_{mode}",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        default_args=DEFAULTS,
        params=PARAMS,
    ) as dag:
        BatchCompletionSensor.partial(task_id="wait", poll_interval=POLL, **options).expand(batch_id=make())
    globals()[dag.dag_id] = dag

    for variant, extra in {"all": {}, "cancel": {"cancel_rest_on_failure": True}}.items():
        with DAG(
            f"together_list_{variant}_{mode}",
            schedule=None,
            start_date=datetime(2026, 1, 1),
            default_args=DEFAULTS,
            params=PARAMS,
        ) as dag:
            BatchCompletionSensor(task_id="wait", batch_id=make(), poll_interval=POLL, **options, **extra)
        globals()[dag.dag_id] = dag

# The ids as Jinja renders an XCom list without render_template_as_native_obj: its Python repr.
with DAG(
    "together_list_jinja",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args=DEFAULTS,
    params=PARAMS,
) as dag:
    make() >> BatchCompletionSensor(
        task_id="wait", batch_id="{{ ti.xcom_pull(task_ids='make') }}", poll_interval=POLL
    )
together_list_jinja = dag

with DAG(
    "together_list_results",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args=DEFAULTS,
    params=PARAMS,
) as dag:
    ids = make()
    wait = BatchCompletionSensor(task_id="wait", batch_id=ids, poll_interval=POLL)
    wait >> BatchResultsOperator(task_id="results", batch_id=ids, result_path="{{ params.result }}")
together_list_results = dag

# A list wait and its merged results updating assets: their events' extra carries the lists.
with DAG(
    "together_list_assets",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args=DEFAULTS,
    params=PARAMS,
) as dag:
    from airflow.providers.common.compat.assets import Asset

    ids = make()
    wait = BatchCompletionSensor(
        task_id="wait", batch_id=ids, poll_interval=POLL, outlets=[Asset("together://tests/list-wait")]
    )
    wait >> BatchResultsOperator(
        task_id="results",
        batch_id=ids,
        result_path="{{ params.result }}",
        outlets=[Asset("together://tests/list-results")],
    )
together_list_assets = dag

# The real split submit feeding both wait forms and the merged results.
with DAG(
    "together_list_split",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    default_args=DEFAULTS,
    params={**PARAMS, "input": ""},
) as dag:
    from together_provider.operators.batch import SubmitBatchOperator

    submit = SubmitBatchOperator(
        task_id="submit", input_file_path="{{ params.input }}", split=True, max_requests_per_batch=3
    )
    each = BatchCompletionSensor.partial(task_id="wait_each", poll_interval=POLL).expand(
        batch_id=submit.output
    )
    every = BatchCompletionSensor(task_id="wait", batch_id=submit.output, poll_interval=POLL)
    results = BatchResultsOperator(
        task_id="results", batch_id=submit.output, result_path="{{ params.result }}"
    )
    [each, every] >> results
together_list_split = dag
