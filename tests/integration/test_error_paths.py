"""Every error against every task path, as users meet them: one ``dag.test()`` run per error of the DAG
in tests/dag_files/together_error_paths.py, whose tasks have ``retries=2``. What no retry can fix fails
on try 1 with the words of the manual's troubleshooting table (docs/troubleshooting.md); what waiting
may fix (429 and 503 past the client's retries) fails only after the task's own retries, on try 3."""

from __future__ import annotations

import re

import pytest

from together_provider.hooks.together import TogetherHook

from ..conftest import connection_uri_env, load_dag
from ..helpers import write_requests

WAITS = (
    "submit_wait_deferrable",
    "submit_wait_poke",
    "sensor_deferrable",
    "sensor_poke",
    "sensor_reschedule",
)
OTHERS = ("get", "cancel", "download", "submit")
PATHS = OTHERS + WAITS
# Tasks given a batch of their own (never finishing), so a fault can aim at one task's batch.
OWN_BATCH = ("get", "cancel", "sensor_deferrable", "sensor_poke", "sensor_reschedule")

FAILED_AT_ONCE = ("failed", 1)
FAILED_AFTER_RETRIES = ("failed", 3)


def everywhere(status, **extra):
    return [{"path": "^/v1/", "kind": "status", "status": status, "times": None, **extra}]


def mid_wait(ids):
    """Each wait's first look at its batch succeeds, every later one answers 404 (the batch vanished)."""
    known = "|".join(re.escape(i) for i in ids.values())
    rules = [
        {
            "method": "GET",
            "path": f"^/v1/batches/{re.escape(ids[t])}$",
            "after": 1,
            "kind": "status",
            "status": 404,
            "times": None,
        }
        for t in ("sensor_deferrable", "sensor_poke", "sensor_reschedule")
    ]
    # The submit operators' batches are new: any batch but the ones above.
    rules.append(
        {
            "method": "GET",
            "path": f"^/v1/batches/(?!(?:{known})$)[^/]+$",
            "kind": "status",
            "status": 404,
            "times": None,
        }
    )
    return rules


# error: (which ids the tasks get, faults, wrong key, expected outcome per task, words in the log)
CASES = {
    "404 at start": (
        "unknown",
        lambda ids: [
            {"method": "POST", "path": "^/v1/batches$", "kind": "status", "status": 404, "times": None}
        ],
        False,
        dict.fromkeys(PATHS, FAILED_AT_ONCE),
        r"answered 404: .*\(check the id: it does not exist for this API key\)",
    ),
    "404 mid-wait": (
        "real",
        mid_wait,
        False,
        {**dict.fromkeys(OTHERS, ("success", 1)), **dict.fromkeys(WAITS, FAILED_AT_ONCE)},
        r"waiting for Together batch \S+ failed: get batch \S+: Together API answered 404",
    ),
    "401 wrong key": (
        "real",
        lambda ids: [],
        True,
        dict.fromkeys(PATHS, FAILED_AT_ONCE),
        r"answered 401: .*\(check the API key in the connection's password field or TOGETHER_API_KEY\)",
    ),
    "403 forbidden": (
        "real",
        lambda ids: everywhere(403),
        False,
        dict.fromkeys(PATHS, FAILED_AT_ONCE),
        r"answered 403: .*\(the API key is valid but may not use this resource\)",
    ),
    "402 out of credits": (
        "real",
        lambda ids: everywhere(402),
        False,
        dict.fromkeys(PATHS, FAILED_AT_ONCE),
        r"answered 402: .*\(the Together account is out of credits",
    ),
    "empty id": (
        "empty",
        lambda ids: [],
        False,
        dict.fromkeys(PATHS, FAILED_AT_ONCE),
        r"batch_id must be a non-empty string, got ''",
    ),
    "429 storm": (
        "real",
        lambda ids: everywhere(429, retry_after="0"),
        False,
        dict.fromkeys(PATHS, FAILED_AFTER_RETRIES),
        r"answered 429",
    ),
    "503 storm": (
        "real",
        lambda ids: everywhere(503, retry_after="0"),
        False,
        dict.fromkeys(PATHS, FAILED_AFTER_RETRIES),
        r"answered 503",
    ),
}


def state(ti):
    return str(getattr(ti.state, "value", ti.state))


def task_ids(kind, hook, input_path):
    if kind == "empty":
        return dict.fromkeys((*OWN_BATCH, "download", "input"), "")
    if kind == "unknown":
        ids = dict.fromkeys(OWN_BATCH, "no-such-batch")
        return {**ids, "download": "no-such-file", "input": str(input_path)}
    file_id = hook.upload_file(input_path).id
    ids = {task: hook.create_batch(file_id).id for task in OWN_BATCH}
    return {**ids, "download": file_id, "input": str(input_path)}


@pytest.mark.parametrize("error", list(CASES))
def test_every_path_fails_as_the_error_means(
    error, airflow_db, together_conn, emu, monkeypatch, tmp_path, task_logs
):
    kind, faults, wrong_key, expected, words = CASES[error]
    src = write_requests(tmp_path / "in.jsonl", n=1, model="emulator/never-finish")
    ids = task_ids(kind, TogetherHook(), src)
    if wrong_key:
        monkeypatch.setenv(
            "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, key="wrong", max_retries=3)
        )
    rules = faults({t: ids[t] for t in OWN_BATCH})
    if rules:
        emu.set_faults(*rules)
    emu.clear_requests_log()

    dag = load_dag(airflow_db, "together_error_paths.py", "together_error_paths")
    conf = {f"id_{name}": value for name, value in {**ids, "out": str(tmp_path / "out" / "f.jsonl")}.items()}
    dag_run = dag.test(run_conf=conf)

    got = {ti.task_id: (state(ti), ti.try_number) for ti in dag_run.get_task_instances()}
    assert got == expected
    assert re.search(words, task_logs()), f"no {words!r} in the task logs"


@pytest.mark.parametrize("path", ["first check", "poke", "execute_complete"])
@pytest.mark.parametrize(
    ("batch", "words"),
    [
        ("failed", r"^(waiting for )?Together batch \S+ ended FAILED: \S.*\((no )?output file"),
        ("unknown", r"get batch no-such-batch: Together API answered 404: .*\(check the id"),
    ],
)
def test_soft_fail_skips_with_the_failure_words(path, batch, words, together_conn, tmp_path):
    from together_provider._compat import AirflowSkipException
    from together_provider.client.wait import batch_event, ended_event
    from together_provider.sensors.batch import BatchCompletionSensor

    from ..helpers import RecordingTI, wait_terminal

    hook = TogetherHook()
    if batch == "failed":
        src = write_requests(tmp_path / "fail.jsonl", n=1, model="emulator/batch-fail")
        finished = wait_terminal(hook, hook.create_batch(hook.upload_file(src).id).id)
        batch_id, event = finished.id, batch_event(finished)
    else:
        batch_id = "no-such-batch"
        message = "get batch no-such-batch: Together API answered 404: x (check the id: ...)"
        event = ended_event("ERROR", batch_id, message)
    sensor = BatchCompletionSensor(
        task_id="wait", batch_id=batch_id, soft_fail=True, deferrable=path == "first check"
    )
    with pytest.raises(AirflowSkipException) as skipped:
        if path == "execute_complete":
            sensor.execute_complete({"ti": RecordingTI()}, event)
        elif path == "poke":
            sensor.poke({"ti": RecordingTI()})
        else:
            sensor.execute({"ti": RecordingTI()})
    assert re.search(words, str(skipped.value)), str(skipped.value)
    assert "soft_fail is set" not in str(skipped.value)
