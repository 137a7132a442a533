"""Asset events: a Together task that succeeds leaves its batch's ids in the ``extra`` of each outlet's
event, where a DAG scheduled on the asset reads them; a failed batch leaves no event."""

from __future__ import annotations

import pytest

from together_provider._compat import AIRFLOW_V_3_0_PLUS

from ..conftest import load_dag, register_outlet_assets
from ..helpers import write_requests


def _events(uri):
    from airflow.utils.session import create_session

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent, AssetModel

        model, event, key = AssetModel, AssetEvent, AssetEvent.asset_id
    else:
        from airflow.models.dataset import DatasetEvent, DatasetModel

        model, event, key = DatasetModel, DatasetEvent, DatasetEvent.dataset_id
    with create_session() as session:
        rows = (
            session.query(event)
            .join(model, model.id == key)
            .filter(model.uri == uri)
            .order_by(event.id)
            .all()
        )
        return [(row.extra, row.source_run_id) for row in rows]


def _run(airflow_db, dag_id, src, **conf):
    dag = load_dag(airflow_db, "together_assets.py", dag_id)
    register_outlet_assets(dag)
    return dag.test(run_conf={"input": str(src), **conf})


def _state(ti):
    return str(getattr(ti.state, "value", ti.state))


@pytest.mark.parametrize("mode", ["deferrable", "poke"])
@pytest.mark.parametrize(("kind", "uri"), [("sensor", "sensor-results"), ("submit", "submit-results")])
def test_a_completed_batch_leaves_its_ids_on_the_asset_event(
    airflow_db, together_conn, tmp_path, mode, kind, uri
):
    uri = f"together://tests/{uri}"
    before = len(_events(uri))
    src = write_requests(tmp_path / "in.jsonl")
    dag_run = _run(airflow_db, f"together_assets_{kind}_{mode}", src)
    assert _state(dag_run) == "success"
    events = _events(uri)
    assert len(events) == before + 1
    extra, run_id = events[-1]
    assert run_id == dag_run.run_id
    ti = dag_run.get_task_instance("wait" if kind == "sensor" else "submit")
    batch_id = ti.xcom_pull(task_ids=ti.task_id, key="batch_id")
    assert extra["batch_id"] == batch_id and batch_id.strip()
    assert extra["status"] == "COMPLETED"
    assert extra["output_file_id"] == ti.xcom_pull(task_ids=ti.task_id, key="output_file_id")
    assert extra["output_file_id"] and extra["error_file_id"] is None


def test_a_failed_batch_leaves_no_asset_event(airflow_db, together_conn, tmp_path):
    uri = "together://tests/sensor-results"
    before = len(_events(uri))
    src = write_requests(tmp_path / "in.jsonl", model="emulator/batch-fail")
    dag_run = _run(airflow_db, "together_assets_sensor_poke", src)
    assert _state(dag_run) == "failed"
    assert len(_events(uri)) == before


def test_landed_results_put_counts_and_result_uri_on_the_asset_event(airflow_db, together_conn, tmp_path):
    uri = "together://tests/landed-results"
    before = len(_events(uri))
    src = write_requests(
        tmp_path / "in.jsonl",
        n=2,
        extra_lines=[
            {
                "custom_id": "gone",
                "body": {"model": "emulator/request-missing", "messages": [{"role": "user", "content": "x"}]},
            }
        ],
    )
    landed = tmp_path / "out" / "results.jsonl"
    dag_run = _run(airflow_db, "together_assets_results", src, results=str(landed))
    assert _state(dag_run) == "success"
    events = _events(uri)
    assert len(events) == before + 1
    extra = events[-1][0]
    assert extra["counts"] == {"succeeded": 2, "errored": 0, "missing": 1, "total": 3}
    assert extra["result_uri"] == str(landed) and landed.exists()
    assert extra["status"] == "COMPLETED" and extra["batch_id"] and extra["output_file_id"]
