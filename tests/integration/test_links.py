"""The "Together batch" link: the URL a submit pushed, only where the connection has a page for its
batches (its ``console_url``; Together's console for Together's API), none for the emulator, and no
error line for a task that pushed none."""

from __future__ import annotations

import pytest

from together_provider._compat import AIRFLOW_V_3_0_PLUS
from together_provider.links import TogetherBatchLink

from ..conftest import connection_uri_env, load_dag
from ..helpers import stored_xcoms, write_requests

LINK = TogetherBatchLink()
CONSOLE = "https://console.example/batches/{batch_id}"


def stored(dag_run, key, map_index=-1):
    """The value of one XCom row of the run's submit task, read from the metadata DB, or None."""
    return stored_xcoms(dag_run.dag_id, dag_run.run_id, "submit").get((map_index, key))


def states(dag_run):
    return {
        (ti.task_id, ti.map_index): str(getattr(ti.state, "value", ti.state))
        for ti in dag_run.get_task_instances()
    }


def bad_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"custom_id": "a"}\n')
    return str(path)


def assert_quiet(out):
    assert "XCom not found" not in out
    assert "Failed to push an xcom for task operator extra link" not in out


@pytest.fixture
def console(emu, monkeypatch):
    """``together_default`` on the emulator, with a page for its batches set in ``console_url``."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=3, console_url=CONSOLE)
    )


@pytest.fixture
def run(airflow_db, together_conn, task_logs):
    def run_dag(dag_id, inputs):
        dag_run = load_dag(airflow_db, "together_links.py", dag_id).test(run_conf={"inputs": inputs})
        return dag_run, task_logs()

    return run_dag


def test_a_task_that_failed_before_its_batch_has_a_quiet_empty_link(run, tmp_path):
    dag_run, out = run("together_links", [bad_file(tmp_path)])
    assert states(dag_run) == {("submit", -1): "failed"}
    assert "'body' is missing" in out  # the task did run and fail, and its log was captured
    assert_quiet(out)
    assert stored(dag_run, "batch_url") is None
    if AIRFLOW_V_3_0_PLUS:  # Airflow 3 stores every link's value as the task ends; 2.x asks on display
        assert stored(dag_run, LINK.xcom_key) == ""


def test_the_link_is_the_pushed_url(run, console, tmp_path):
    dag_run, out = run("together_links", [str(write_requests(tmp_path / "in.jsonl", n=1))])
    assert states(dag_run) == {("submit", -1): "success"}
    url = stored(dag_run, "batch_url")
    batch_id = stored(dag_run, "return_value")
    assert batch_id and url == CONSOLE.format(batch_id=batch_id)
    if AIRFLOW_V_3_0_PLUS:
        assert stored(dag_run, LINK.xcom_key) == url
    assert_quiet(out)


def test_a_connection_to_the_emulator_has_no_link(run, tmp_path):
    """Together's console has no page for the emulator's batches: no URL is pushed and the link is empty
    (Airflow shows none), rather than one to api.together.ai that would open someone else's page."""
    dag_run, out = run("together_links", [str(write_requests(tmp_path / "in.jsonl", n=1))])
    assert states(dag_run) == {("submit", -1): "success"}
    assert stored(dag_run, "return_value")
    assert stored(dag_run, "batch_url") is None
    if AIRFLOW_V_3_0_PLUS:
        assert stored(dag_run, LINK.xcom_key) == ""
    assert_quiet(out)


def test_mapped_submits_each_link_their_own_batch(run, console, tmp_path):
    inputs = [str(write_requests(tmp_path / f"in{i}.jsonl", n=1, model=f"m{i}")) for i in range(2)]
    dag_run, out = run("together_links_mapped", inputs)
    assert set(states(dag_run).values()) == {"success"}
    urls = [stored(dag_run, "batch_url", i) for i in range(2)]
    assert all(urls) and urls[0] != urls[1]
    if AIRFLOW_V_3_0_PLUS:
        assert [stored(dag_run, LINK.xcom_key, i) for i in range(2)] == urls
    assert_quiet(out)


def test_mapped_submits_that_all_failed_early_are_quiet(run, tmp_path):
    dag_run, out = run("together_links_mapped", [bad_file(tmp_path)] * 2)
    assert set(states(dag_run).values()) == {"failed"}
    assert_quiet(out)
