"""Shared fixtures: an isolated Airflow home with a migrated sqlite DB, and the emulator on loopback."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "provider") not in sys.path:
    sys.path.insert(0, str(ROOT / "provider"))

# Before anything imports Airflow: its home, DB and config are read at import time.
_HOME = Path(tempfile.mkdtemp(prefix="together-provider-tests-"))
os.environ.setdefault("AIRFLOW_HOME", str(_HOME))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{_HOME}/airflow.db")
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
    """The session's emulator, with faults cleared and the request log emptied for this test."""
    emulator.clear_faults()
    emulator.clear_requests_log()
    yield emulator
    emulator.clear_faults()


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
    return _DAGS


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
