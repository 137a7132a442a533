"""Shared fixtures: an isolated Airflow home with a migrated sqlite DB, and the emulator on loopback."""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "provider") not in sys.path:
    sys.path.insert(0, str(ROOT / "provider"))

# Before anything imports Airflow: its home, DB and config are read at import time.
_HOME = Path(tempfile.mkdtemp(prefix="together-provider-tests-"))
# pytest-xdist's workers inherit the environment of the pytest process that started them, which has
# imported this file too: a home and DB set there would be shared by every worker, and each worker's
# resetdb() would wipe the DB another is running a DAG on. So what a parent's import set (named in
# _SET_HERE) is dropped first, and each process sets its own; what the caller set is kept as before.
_SET_HERE = "TOGETHER_TESTS_SET_ENV"
for _name in filter(None, os.environ.pop(_SET_HERE, "").split(",")):
    os.environ.pop(_name, None)
_defaults = {
    "AIRFLOW_HOME": str(_HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    # Airflow 3.0-3.2 start dag.test()'s in-process execution API only when this is set (3.3 makes one up).
    "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
}
_set = [name for name in _defaults if name not in os.environ]
os.environ.update({name: _defaults[name] for name in _set})
os.environ[_SET_HERE] = ",".join(_set)
# dag.test() runs only DAGs found in a bundle: the examples and the test DAGs are copied into one.
_DAGS = _HOME / "dags"
shutil.copytree(ROOT / "dags", _DAGS, ignore=shutil.ignore_patterns("__pycache__"))
for _file in (ROOT / "tests" / "dag_files").glob("*.py"):
    shutil.copy(_file, _DAGS / _file.name)
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_DAGS)
os.environ.pop("TOGETHER_API_KEY", None)
os.environ.pop("TOGETHER_BASE_URL", None)

TEST_KEY = "tk-test-0123456789abcdef"


@pytest.fixture(scope="session")
def emulator():
    from together_provider.testing.emulator import EmulatorServer

    with EmulatorServer(api_key=TEST_KEY, validating_seconds=0.2, processing_seconds=0.6) as server:
        yield server


@pytest.fixture
def emu(emulator):
    """The session's emulator, with faults cleared and the request log emptied for this test; the
    durations a test set on its clock are put back after it, so no test leaks them into the next."""
    emulator.clear_faults()
    emulator.clear_requests_log()
    clock = emulator.set_clock()
    yield emulator
    emulator.clear_faults()
    emulator.set_clock(
        validating_seconds=clock["validating_seconds"],
        processing_seconds=clock["processing_seconds"],
        latency_ms=clock["latency_ms"],
    )


def connection_uri_env(url: str, key: str = TEST_KEY, **extra) -> str:
    return json.dumps({"conn_type": "together", "host": url, "password": key, "extra": extra})


@pytest.fixture
def together_conn(emu, monkeypatch):
    """``together_default`` pointing at the emulator, through an env-var connection (no DB needed)."""
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=3))
    return "together_default"


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated metadata DB, for dag.test() runs."""
    from airflow.utils import db

    db.resetdb()
    _in_process_api_waits_for_its_lifespan()
    return _DAGS


def _in_process_api_waits_for_its_lifespan() -> None:
    """Airflow 3.0-3.2's dag.test() starts its in-process execution API's lifespan on another thread and
    sends the first request without waiting for it, and unwinds the lifespan as soon as the API object
    is garbage collected, though its transport is still in use. On 3.2 a request then fails with "no
    attribute svcs_registry". 3.3 waits, and ties the lifespan to the transport: so does this."""
    try:
        from airflow.sdk.execution_time import supervisor
    except ImportError:
        return  # Airflow 2: dag.test() runs tasks without an execution API
    make = getattr(supervisor, "in_process_api_server", None)
    if make is None or getattr(make, "_waits_for_lifespan", False):
        return

    def ready_api_server():
        api = make()
        transport = api.transport  # cached; creating it starts the lifespan
        transport._keeps_its_api_alive = api
        deadline = time.monotonic() + 30
        while not hasattr(api.app.state, "svcs_registry") and time.monotonic() < deadline:
            time.sleep(0.01)
        return api

    ready_api_server._waits_for_lifespan = True  # type: ignore[attr-defined]
    supervisor.in_process_api_server = ready_api_server


@pytest.fixture(autouse=True)
def _task_logs_to_this_tests_stdout():
    """Airflow 2's dag.test() adds a stdout handler to the task logger once per process, bound to the
    sys.stdout of the first test that ran a DAG (pytest's capture of that test, closed since). Dropping
    it after each test lets the next dag.test() bind one to its own test's capture."""
    yield
    task_logger = logging.getLogger("airflow.task")
    for handler in list(task_logger.handlers):
        if type(handler) is logging.StreamHandler and handler.stream not in (sys.__stdout__, sys.__stderr__):
            task_logger.removeHandler(handler)


@pytest.fixture
def task_logs(capsys, caplog):
    """Everything tasks logged so far in this test, whitespace collapsed. Airflow 3 prints task logs
    through structlog to stdout; Airflow 2 sends them through ``logging`` (caught by caplog) and, in
    dag.test(), to stdout. Airflow 3.0 prints a task's exception with rich, wrapped at 80 columns."""
    caplog.set_level(logging.INFO)

    def read() -> str:
        captured = capsys.readouterr()
        return " ".join(" ".join((captured.out, captured.err, caplog.text)).split())

    return read


def load_dag(dags_folder: Path, file_name: str, dag_id: str):
    """Import a DAG from the bundle copy, so its file location is inside the bundle dag.test() syncs."""
    import importlib.util

    path = dags_folder / file_name
    spec = importlib.util.spec_from_file_location(f"bundle_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for value in vars(module).values():
        if getattr(value, "dag_id", None) == dag_id and hasattr(value, "test"):
            return value
    raise LookupError(f"no DAG {dag_id!r} in {path}")


def register_outlet_assets(dag) -> None:
    """Write the DAG's assets to the metadata DB as active, as a deployment's DAG processor and scheduler
    would before any run. ``dag.test()`` does so itself from Airflow 3.1 on; on Airflow 2 an event is
    recorded only for a dataset in the DB, and 3.0 refuses to run a task whose outlet asset is not active
    (AirflowInactiveAssetInInletOrOutletException): neither ``dag.test()`` writes it."""
    from together_provider._compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_1_PLUS

    if AIRFLOW_V_3_1_PLUS:
        return
    if not AIRFLOW_V_3_0_PLUS:
        dag.sync_to_db()
        return
    # 3.0: the scheduler-side DAG's sync writes the asset rows and activates them (the DAG processor's path).
    from airflow.serialization.serialized_objects import SerializedDAG

    SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag)).sync_to_db()
