"""The API key never reaches anything Airflow keeps: logs, trigger rows and kwargs, XCom, rendered
template fields, task instance rows, exception texts. Run the example DAGs, then search everything."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

from ..conftest import TEST_KEY, connection_uri_env, load_dag

WRONG_KEY = "tk-wrong-secret-9876543210"
# Tables that hold what a run produced. `connection` is where a user deliberately stores the key.
MUST_SCAN = {"task_instance", "trigger", "dag_run", "log"}
# Where XComs and rendered template fields are kept: Airflow 3.4 keeps them per task attempt in new tables.
XCOM_AND_RTIF = {"xcom_v2": ("xcom_v2", "rtif_v2"), "xcom": ("xcom", "rendered_task_instance_fields")}


@pytest.fixture
def noisy_logs(caplog):
    """DEBUG for every HTTP library the provider uses: headers must not appear even there."""
    names = ["urllib3", "requests", "aiohttp", "together_provider", "airflow.task"]
    old = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for name, level in old.items():
        logging.getLogger(name).setLevel(level)


def scan_database(url: str) -> tuple[dict[str, int], list[str]]:
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    rows_seen, hits = {}, []
    for table in tables:
        if table == "connection":
            continue
        rows = db.execute(f'select * from "{table}"').fetchall()
        rows_seen[table] = len(rows)
        for row in rows:
            text = " ".join(
                v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row if v is not None
            )
            for key in (TEST_KEY, WRONG_KEY):
                if key in text:
                    hits.append(f"{table}: {text[:200]}")
    return rows_seen, hits


def test_key_appears_nowhere_airflow_keeps(
    airflow_db, together_conn, emu, monkeypatch, tmp_path, capsys, noisy_logs
):
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", (tmp_path / "out").as_uri())
    states = []
    for file, dag_id, conf in [
        ("example_together_batch.py", "example_together_batch", None),
        ("example_together_batch_failures.py", "example_together_batch_failures", {"outcome": "fail"}),
    ]:
        dag_run = load_dag(airflow_db, file, dag_id).test(run_conf=conf)
        states.append(str(getattr(dag_run.state, "value", dag_run.state)))
    assert states == ["success", "failed"]

    # A wrong key: the 401 and its exception text must not carry the key either.
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, key=WRONG_KEY))
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"custom_id": "a", "body": {"model": "m", "messages": [{"role": "user", "content": "x"}]}})
        + "\n"
    )
    dag_run = load_dag(airflow_db, "together_outcomes.py", "together_plain_deferrable").test(
        run_conf={"input": str(src), "report": str(tmp_path / "r.json")}
    )
    submit = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "submit")
    assert str(getattr(submit.state, "value", submit.state)) == "failed"

    captured = capsys.readouterr()
    places = {"stdout": captured.out, "stderr": captured.err, "log records": noisy_logs.text}
    assert "401" in captured.out + noisy_logs.text  # the failure was logged, just not the key
    for path in Path(os.environ["AIRFLOW_HOME"]).rglob("*.log"):
        places[str(path)] = path.read_text(errors="replace")
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        # Airflow 3.0's in-process supervisor logs, at DEBUG, each secret it is asked to mask
        # ("Sending request msg=MaskSecret(value=...)"); 3.1 leaves the body out. Airflow's line, not ours.
        places = {
            name: "\n".join(line for line in text.splitlines() if "MaskSecret(" not in line)
            for name, text in places.items()
        }
    for name, text in places.items():
        for key in (TEST_KEY, WRONG_KEY):
            assert key not in text, f"API key found in {name}"
    assert "Bearer ***" not in captured.out or TEST_KEY not in captured.out

    # Trigger kwargs are stored encrypted when a Fernet key is set: read them as the triggerer does.
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    with create_session() as session:
        stored = [json.dumps(t.kwargs, default=str) for t in session.query(Trigger).all()]
    print(f"{len(stored)} trigger rows kept")
    assert all(TEST_KEY not in kwargs and WRONG_KEY not in kwargs for kwargs in stored)

    rows_seen, hits = scan_database(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert hits == []
    xcom, rtif = XCOM_AND_RTIF["xcom_v2" if "xcom_v2" in rows_seen else "xcom"]
    assert set(rows_seen) >= {*MUST_SCAN, xcom, rtif}, sorted(rows_seen)
    assert rows_seen[xcom] > 0 and rows_seen["task_instance"] > 0 and rows_seen[rtif] > 0
