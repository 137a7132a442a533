"""A connection stored where Airflow keeps it (metadata DB, a secrets backend), not in an environment
variable, reaches a deferrable wait in every runner that runs its trigger in-process: ``dag.test()``
and ``airflow dags test`` (the CLI, in a subprocess, as a user runs it). The real triggerer's path is
covered by the e2e suite (tests/e2e/scenarios.py, the "metadata DB connection" scenario)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_1_PLUS

from together_provider import _compat
from together_provider._compat import AIRFLOW_V_3_0_PLUS, AirflowNotFoundException
from together_provider.hooks.async_client import connection_lookup
from together_provider.hooks.together import TogetherHook

from ..conftest import load_dag

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ENV_CONN = "AIRFLOW_CONN_TOGETHER_DEFAULT"
# The example DAG uses the default connection id, as a user's first DAG does.
CONN_ID = "together_default"
EXAMPLE_DAG = "example_together_batch"
WAIT_TASK = "wait_for_batch"
HELD = 3600.0  # processing seconds that keep a batch IN_PROGRESS until the emulator's clock moves on
# What dag.test() logs (Airflow 2.11 and 3.x) when a task has deferred and its trigger starts.
TRIGGER_STARTS = "[DAG TEST] running trigger in line"


# Airflow 3.0's in-process runner (`airflow dags test`) logs at debug level every request it relays to
# its supervisor, and Airflow's own connection lookup registers the password with the secrets masker
# through one, so that line shows the value it asks to mask (3.1 no longer does). The line is Airflow's,
# written whether or not this provider is installed; docs/compatibility.md says so.
AIRFLOW_30_MASK_RELAY = re.compile(r"\[debug\s*\] Sending request\s+msg=MaskSecret\(value=")


def assert_key_not_logged(out: str, key: str) -> None:
    """The API key is in no line of the output, save on 3.0 the relay lines Airflow itself writes."""
    lines = [line for line in out.splitlines() if key in line]
    if AIRFLOW_V_3_0_PLUS and not AIRFLOW_V_3_1_PLUS:
        relayed = [line for line in lines if AIRFLOW_30_MASK_RELAY.search(line)]
        assert relayed, "Airflow 3.0 no longer logs the MaskSecret requests it relays: drop the exception"
        lines = [line for line in lines if line not in relayed]
    assert lines == [], lines


def state(ti) -> str:
    return str(getattr(ti.state, "value", ti.state))


def _delete_connection(conn_id: str) -> None:
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()


@contextmanager
def held_until(emu, ready: Callable[[], bool], timeout: float = 120.0) -> Iterator[threading.Event]:
    """Batches created inside stay IN_PROGRESS until ``ready()``, then the emulator's clock moves on
    and they complete: the sensor's first check cannot find its batch finished, so the wait must go
    through the trigger. The event yielded is set when ``ready()`` said so (not the timeout)."""
    before = emu.set_clock()  # with no values: the settings now, changed by nothing
    emu.set_clock(processing_seconds=HELD)
    seen, stop = threading.Event(), threading.Event()

    def release() -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            if ready():
                seen.set()
                break
            time.sleep(0.05)
        emu.advance_clock(HELD)

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    try:
        yield seen
    finally:
        stop.set()
        releaser.join(10)
        emu.set_clock(processing_seconds=before["processing_seconds"])


def logged(log: Path, text: str) -> Callable[[], bool]:
    return lambda: log.exists() and text in log.read_text(errors="replace")


def record_sync_lookups(monkeypatch) -> list[tuple[int, bool]]:
    """(thread, whether an event loop runs on it) for every synchronous connection lookup: the
    tasks' own, and the trigger's where it needs a thread."""
    calls: list[tuple[int, bool]] = []
    base_hook = _compat.BaseHook
    original = base_hook.get_connection.__func__

    def get_connection(cls, conn_id):
        try:
            asyncio.get_running_loop()
            on_loop = True
        except RuntimeError:
            on_loop = False
        calls.append((threading.get_ident(), on_loop))
        return original(cls, conn_id)

    monkeypatch.setattr(base_hook, "get_connection", classmethod(get_connection))
    return calls


@pytest.fixture
def db_connection(airflow_db, emu, monkeypatch):
    """``together_default`` as a row of the metadata DB, and no environment variable to shadow it."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    monkeypatch.delenv(ENV_CONN, raising=False)
    _delete_connection(CONN_ID)
    with create_session() as session:
        session.add(
            Connection(
                conn_id=CONN_ID,
                conn_type="together",
                host=emu.url,
                password=emu.api_key,
                extra=json.dumps({"max_retries": 3}),
            )
        )
    yield CONN_ID
    _delete_connection(CONN_ID)


def test_dag_test_waits_with_a_db_connection(db_connection, airflow_db, emu, monkeypatch, tmp_path):
    monkeypatch.setenv("TOGETHER_EXAMPLE_POLL_INTERVAL", "0.2")
    monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", tmp_path.as_uri())
    lookups = record_sync_lookups(monkeypatch)
    main = threading.get_ident()
    dag = load_dag(airflow_db, "example_together_batch.py", EXAMPLE_DAG)
    # Released once the trigger has looked its connection up (tasks look up on the main thread).
    with held_until(emu, lambda: any(thread != main for thread, _ in lookups)) as trigger_looked_up:
        dag_run = dag.test()
    states = {ti.task_id: state(ti) for ti in dag_run.get_task_instances()}
    assert states == dict.fromkeys(["submit_batch", WAIT_TASK, "batch_results", "summarize"], "success")
    assert trigger_looked_up.is_set(), "the trigger never looked its connection up"
    # The trigger's loop handed the synchronous lookup to a thread, never ran it itself.
    assert not any(on_loop for _, on_loop in lookups)
    assert len(list(tmp_path.glob("*/results.jsonl"))) == 1


@pytest.fixture
def cli_env(airflow_db, emu, tmp_path, monkeypatch):
    """The environment ``airflow`` runs in: the test Airflow home, no connection in the environment."""
    monkeypatch.delenv(ENV_CONN, raising=False)
    env = {key: value for key, value in os.environ.items() if key != ENV_CONN}
    env["TOGETHER_EXAMPLE_POLL_INTERVAL"] = "0.2"
    env["TOGETHER_EXAMPLE_RESULTS_URL"] = (tmp_path / "out").as_uri()
    _delete_connection(CONN_ID)
    yield env
    _delete_connection(CONN_ID)


def airflow(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


def airflow_dags_test(env: dict[str, str], emu, tmp_path: Path) -> tuple[int, str]:
    """``airflow dags test`` of the example, its batch held until the wait's trigger starts."""
    log = tmp_path / "dags-test.log"
    with held_until(emu, logged(log, TRIGGER_STARTS)) as trigger_started, open(log, "w") as out:
        code = subprocess.run(
            [AIRFLOW, "dags", "test", EXAMPLE_DAG],
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=300,
        ).returncode
    text = log.read_text(errors="replace")
    assert trigger_started.is_set(), f"the wait never deferred, so its trigger was not tested: {text[-3000:]}"
    return code, text


def assert_example_dag_succeeded(code: int, out: str, tmp_path: Path) -> None:
    assert "isn't defined" not in out, out[-3000:]
    assert code == 0, out[-3000:]
    assert "Together batch results: 6 answers, 0 failed requests" in out, out[-3000:]
    assert len(list((tmp_path / "out").glob("*/results.jsonl"))) == 1
    # A successful run with Airflow's defaults logs nothing at error level (issue 12, point 4).
    errors = [line for line in out.splitlines() if re.search(r"\[error\s*\]|\bERROR\b", line)]
    assert errors == [], errors


def test_airflow_dags_test_waits_with_a_connection_added_by_the_cli(cli_env, emu, tmp_path):
    """The first way docs/connection.md gives: ``airflow connections add``, then ``airflow dags test``."""
    code, out = airflow(
        cli_env,
        "connections",
        "add",
        CONN_ID,
        "--conn-type",
        "together",
        "--conn-host",
        emu.url,
        "--conn-password",
        emu.api_key,
    )
    assert code == 0, out
    code, out = airflow_dags_test(cli_env, emu, tmp_path)
    assert_example_dag_succeeded(code, out, tmp_path)
    assert_key_not_logged(out, emu.api_key)


def test_airflow_dags_test_waits_with_a_secrets_backend_connection(cli_env, emu, tmp_path):
    """A connection only a configured secrets backend knows (here Airflow's local-file backend)."""
    connections = tmp_path / "connections.json"
    connections.write_text(
        json.dumps({CONN_ID: {"conn_type": "together", "host": emu.url, "password": emu.api_key}})
    )
    cli_env["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    cli_env["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({"connections_file_path": str(connections)})
    code, out = airflow_dags_test(cli_env, emu, tmp_path)
    assert_example_dag_succeeded(code, out, tmp_path)
    assert_key_not_logged(out, emu.api_key)


# ---- the thread fallback is taken only in the runner that needs it -------------------------------


class ThreadRecordingHook(TogetherHook):
    threads: list[int] = []

    @classmethod
    def get_connection(cls, conn_id):
        cls.threads.append(threading.get_ident())
        return super().get_connection(conn_id)


def masks_asynchronously() -> bool:
    """Airflow 3.3.2+ looks a connection up on the event loop itself (``Connection.aextra_dejson``)."""
    from airflow.providers.common.compat.sdk import Connection

    return hasattr(Connection, "aextra_dejson")


def test_a_connection_defined_nowhere_is_not_looked_up_again_in_a_thread(airflow_db, monkeypatch):
    """Outside the in-process runner, "not defined" is the answer: where Airflow looks up on the loop,
    no thread repeats the lookup (a real triggerer's loop must not wait on one for every typo)."""
    monkeypatch.delenv("AIRFLOW_CONN_TOGETHER_NOWHERE", raising=False)
    ThreadRecordingHook.threads = []
    with pytest.raises(AirflowNotFoundException, match="together_nowhere"):
        asyncio.run(connection_lookup(ThreadRecordingHook)("together_nowhere"))
    # Before 3.3.2 common-compat's own lookup is the synchronous one in a thread, once.
    assert len(ThreadRecordingHook.threads) == (0 if masks_asynchronously() else 1)


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="Airflow 2 has no supervisor comms")
def test_only_the_in_process_runners_comms_count_as_sync_only(monkeypatch):
    from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder
    from airflow.sdk.execution_time import supervisor, task_runner

    in_process = getattr(supervisor, "InProcessSupervisorComms", None)
    if in_process is None:
        pytest.skip("this Airflow's dag.test() has no in-process supervisor comms")
    monkeypatch.delattr(task_runner, "SUPERVISOR_COMMS", raising=False)
    assert not _compat._supervisor_comms_are_sync_only()
    # Only the class's methods are consulted: uninitialised instances are enough.
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", object.__new__(TriggerCommsDecoder), raising=False)
    assert not _compat._supervisor_comms_are_sync_only(), "a real triggerer must never take the thread"
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", object.__new__(in_process))
    assert _compat._supervisor_comms_are_sync_only(), (
        "dag.test()'s comms answer asynchronously now: the thread fallback may no longer be needed"
    )
