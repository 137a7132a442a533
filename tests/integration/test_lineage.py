"""OpenLineage: submit, download and results report what they read and wrote, and the batch they worked
on; without the OpenLineage provider nothing of ours imports it.

The real path is ``airflow dags test`` with OpenLineage's file transport: Airflow's own listener calls the
operators' ``get_openlineage_facets_on_complete`` and writes the events a lineage backend would get.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import DownloadBatchFileOperator, SubmitBatchOperator
from together_provider.operators.results import BatchResultsOperator

from ..conftest import connection_uri_env
from ..helpers import RecordingTI, wait_terminal, write_requests

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
HOST = "127.0.0.1"


def test_our_modules_import_no_openlineage():
    # Airflow's provider discovery reads every provider's get_provider_info; the OpenLineage client and
    # the provider's extractors are what only lineage would load.
    code = (
        "import sys\n"
        "import together_provider.operators.batch, together_provider.operators.results\n"
        "import together_provider.sensors.batch, together_provider.tasks.lineage\n"
        "lineage = ('openlineage', 'airflow.providers.openlineage.extractors')\n"
        "loaded = [m for m in sys.modules if m.startswith(lineage)]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


openlineage = pytest.importorskip(
    "airflow.providers.openlineage", reason="apache-airflow-providers-openlineage is not installed here"
)


def _pairs(datasets):
    return [(d.namespace, d.name) for d in datasets]


@pytest.fixture
def hook(together_conn):
    return TogetherHook()


def _together(emu):
    return f"together://{emu.url.split('://', 1)[1].split('/', 1)[0]}"


def test_submit_then_results_name_every_file_and_the_batch(hook, emu, tmp_path):
    src = write_requests(tmp_path / "in.jsonl", n=2)
    submit = SubmitBatchOperator(task_id="submit", input_file_path=str(src), model_id="test/model")
    batch_id = submit.execute({"ti": RecordingTI()})
    batch = wait_terminal(hook, batch_id)
    lineage = submit.get_openlineage_facets_on_complete(None)
    together = _together(emu)
    assert _pairs(lineage.inputs) == [("file", str(src))]
    assert _pairs(lineage.outputs) == [(together, f"files/{batch.input_file_id}")]
    facet = lineage.run_facets["together_batch"]
    assert facet.batchId == batch_id and facet.endpoint == "/v1/chat/completions"
    assert facet.models == ["test/model"]

    landed = tmp_path / "out" / "results.jsonl"
    results = BatchResultsOperator(task_id="results", batch_id=batch_id, result_path=str(landed))
    results.execute({"ti": RecordingTI()})
    lineage = results.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.inputs) == [
        (together, f"files/{batch.input_file_id}"),
        (together, f"files/{batch.output_file_id}"),
    ]
    assert _pairs(lineage.outputs) == [("file", str(landed))]
    facet = lineage.run_facets["together_batch"]
    assert facet.counts == {"succeeded": 2, "errored": 0, "missing": 0, "total": 2}
    assert facet.status == "COMPLETED"


def test_a_table_s_output_carries_its_schema_facet_and_jsonl_none(hook, tmp_path):
    pytest.importorskip("pyarrow", reason="pyarrow is not installed (the parquet extra brings it)")
    from together_provider.client.table import COLUMNS

    batch = wait_terminal(
        hook, hook.create_batch(hook.upload_file(write_requests(tmp_path / "t.jsonl")).id).id
    )
    target = tmp_path / "out" / "rows.parquet"
    store_url = "s3://aws_conn@bucket/rows.parquet"
    results = BatchResultsOperator(
        task_id="results", batch_id=batch.id, result_path=str(target), result_format="parquet"
    )
    results.execute({"ti": RecordingTI()})
    lineage = results.get_openlineage_facets_on_complete(None)
    (output,) = lineage.outputs
    assert (output.namespace, output.name) == ("file", str(target))
    fields = output.facets["schema"].fields
    assert [(f.name, f.type) for f in fields] == [(c.name, c.type) for c in COLUMNS]
    assert fields[1].description == "succeeded, errored or missing"
    assert all(not dataset.facets for dataset in lineage.inputs), "Together's files get no schema"

    # The facet follows the location as lineage names it (a store's bucket and key, without the conn id).
    results._lineage.output_locations = [store_url]
    (output,) = results.get_openlineage_facets_on_complete(None).outputs
    assert (output.namespace, output.name) == ("s3://bucket", "rows.parquet") and output.facets["schema"]

    jsonl = BatchResultsOperator(task_id="results", batch_id=batch.id, result_path=str(tmp_path / "r.jsonl"))
    jsonl.execute({"ti": RecordingTI()})
    (output,) = jsonl.get_openlineage_facets_on_complete(None).outputs
    assert "schema" not in (output.facets or {})


def test_download_into_an_object_store_url_names_bucket_and_key(hook, emu, tmp_path):
    batch = wait_terminal(
        hook, hook.create_batch(hook.upload_file(write_requests(tmp_path / "d.jsonl")).id).id
    )
    target = tmp_path / "dl" / "out.jsonl"
    download = DownloadBatchFileOperator(task_id="dl", file_id=batch.output_file_id, path=target.as_uri())
    download.execute({"ti": RecordingTI()})
    lineage = download.get_openlineage_facets_on_complete(None)
    assert _pairs(lineage.inputs) == [(_together(emu), f"files/{batch.output_file_id}")]
    assert _pairs(lineage.outputs) == [("file", str(target))]


def test_a_task_that_failed_before_reading_reports_nothing(together_conn):
    download = DownloadBatchFileOperator(task_id="dl", file_id="file-x", path="/tmp/x.jsonl")
    lineage = download.get_openlineage_facets_on_failure(None)
    assert lineage.inputs == [] and lineage.outputs == [] and lineage.run_facets == {}


def test_location_datasets_leave_the_connection_out():
    from together_provider.tasks.lineage import location_dataset

    assert location_dataset("s3://aws_conn@bucket/a/b.jsonl") == ("s3://bucket", "a/b.jsonl")
    assert location_dataset("gs://bucket/k.jsonl") == ("gs://bucket", "k.jsonl")
    assert location_dataset("file:///tmp/x.jsonl") == ("file", "/tmp/x.jsonl")


def test_airflow_dags_test_emits_the_events_through_the_openlineage_listener(airflow_db, emu, tmp_path):
    events_file = tmp_path / "lineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW_CONN_TOGETHER_DEFAULT": connection_uri_env(emu.url, max_retries=3),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "together-tests",
        "TOGETHER_EXAMPLE_POLL_INTERVAL": "0.2",
        "TOGETHER_EXAMPLE_RESULTS_URL": (tmp_path / "out").as_uri(),
    }
    done = subprocess.run(
        [AIRFLOW, "dags", "test", "example_together_batch"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert events_file.exists(), (done.stdout + done.stderr)[-3000:]
    complete = {}
    for line in events_file.read_text().splitlines():
        event = json.loads(line)
        if event.get("eventType") == "COMPLETE":
            complete[event["job"]["name"]] = event
    submit = complete["example_together_batch.submit_batch"]
    results = complete["example_together_batch.batch_results"]
    together = _together(emu)
    assert [d["namespace"] for d in submit["inputs"]] == ["file"]
    assert submit["inputs"][0]["name"].endswith("data/chat_requests.jsonl")
    assert [d["namespace"] for d in submit["outputs"]] == [together]
    batch_id = submit["run"]["facets"]["together_batch"]["batchId"]
    facet = results["run"]["facets"]["together_batch"]
    assert facet["batchId"] == batch_id and facet["status"] == "COMPLETED"
    assert facet["counts"]["total"] == facet["counts"]["succeeded"] > 0
    assert [(d["namespace"], d["name"].endswith("/results.jsonl")) for d in results["outputs"]] == [
        ("file", True)
    ]
