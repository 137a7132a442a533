"""One place resolves Airflow names: the rule that keeps the provider working on 2.11 and every 3.x."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from together_provider import _compat

PACKAGE = Path(_compat.__file__).resolve().parent
# The common-compat provider resolves names per version; anything else from Airflow goes through
# _compat.py, so a difference between versions is handled there once.
ALLOWED_PREFIX = "airflow.providers.common.compat"


def airflow_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name == "airflow" or name.startswith("airflow.")]
    return found


def test_airflow_is_imported_only_through_compat():
    offenders = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py"
        for line, name in airflow_imports(path)
        if not name.startswith(ALLOWED_PREFIX)
    ]
    assert offenders == [], "import these through together_provider._compat:\n" + "\n".join(offenders)


def test_version_checks_live_in_compat():
    """Version flags may be read elsewhere, but only _compat.py compares versions itself."""
    offenders = [
        str(path.relative_to(PACKAGE.parent))
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "_compat.py"
        and any(word in path.read_text() for word in ("airflow.__version__", "get_base_airflow_version"))
    ]
    assert offenders == []


# What DAG files must not load: the HTTP hook's requests/aiohttp stack, and airflow.triggers.base
# (most of what the provider once added to a parse; make bench measures it), which only the trigger
# module needs; pyarrow, which only a task writing Parquet needs.
NOT_AT_PARSE = (
    "airflow.providers.http.hooks.http",
    "aiohttp",
    "requests",
    "airflow.triggers.base",
    "pyarrow",
)


def test_parsing_a_dag_does_not_load_what_only_workers_and_triggerers_need():
    """DAG files import the operators at every parse; _compat resolves the HTTP hook and the trigger
    base classes lazily, on workers and triggerers only."""
    code = (
        "import sys\n"
        "from airflow.sdk import DAG\n"
        "from airflow.providers.common.compat.sdk import BaseOperator\n"
        # What Airflow loads to build any operator is Airflow's (3.0's BaseOperator loads its serializer,
        # and with it the trigger base and aiohttp): counted before, so only what ours add is measured.
        "BaseOperator(task_id='baseline')\n"
        "before = set(sys.modules)\n"
        "import together_provider.operators.batch, together_provider.sensors.batch\n"
        "from together_provider.operators.results import BatchResultsOperator\n"
        # Asking for Parquet checks that pyarrow is there without importing it.
        "BatchResultsOperator(task_id='r', batch_id='b', result_path='/tmp/r', result_format='parquet')\n"
        f"print(sorted(m for m in {NOT_AT_PARSE!r} if m in set(sys.modules) - before))\n"
    )
    if not _compat.AIRFLOW_V_3_0_PLUS:
        code = code.replace("from airflow.sdk import DAG", "from airflow import DAG")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    ("name", "module"),
    [
        ("HttpHook", "airflow.providers.http.hooks.http"),
        ("BaseTrigger", "airflow.triggers.base"),
        ("TriggerEvent", "airflow.triggers.base"),
        ("BaseHook", "airflow.providers.common.compat.sdk"),
        ("BaseSensorOperator", "airflow.providers.common.compat.sdk"),
        ("PokeReturnValue", "airflow.providers.common.compat.sdk"),
    ],
)
def test_lazy_names_resolve_on_first_use(name, module):
    import importlib

    assert getattr(_compat, name) is getattr(importlib.import_module(module), name)
    assert name in _compat.__all__


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="NoSuchName"):
        _compat.NoSuchName  # noqa: B018


class RecordingTI:
    def __init__(self):
        self.xcoms = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value


def test_xcom_push_skips_none_only_where_airflow_refuses_it():
    ti = RecordingTI()
    _compat.xcom_push(ti, "status", "COMPLETED")
    _compat.xcom_push(ti, "error_file_id", None)
    expected = {"status": "COMPLETED"}
    if _compat.XCOM_STORES_NONE:
        expected["error_file_id"] = None
    assert ti.xcoms == expected


def test_xcom_none_support_by_version():
    from airflow import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    assert _compat.XCOM_STORES_NONE is ((major, minor) != (3, 0))
