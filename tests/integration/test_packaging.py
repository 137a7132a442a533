"""The provider as Airflow sees it: entry point, connection type, CLI, and what provider info names."""

from __future__ import annotations

import importlib
import importlib.resources
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from together_provider import get_provider_info
from together_provider._compat import AIRFLOW_V_3_0_PLUS

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def cli_env(airflow_db, tmp_path_factory):
    env = dict(os.environ)
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    return env


def airflow(env, *args):
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=180)
    return result.returncode, result.stdout + result.stderr


def test_every_module_named_in_provider_info_imports():
    info = get_provider_info()
    modules = [
        m
        for kind in ("hooks", "operators", "sensors", "triggers")
        for e in info[kind]
        for m in e["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
    for dotted in [info["connection-types"][0]["hook-class-name"], *info["extra-links"]]:
        module, _, name = dotted.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_the_provider_info_matches_airflows_schema_and_its_config_is_airflows(cli_env):
    import jsonschema

    schema = json.loads((importlib.resources.files("airflow") / "provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    # The value is a line of its own (Airflow 2 may print deprecation warnings around it).
    code, out = airflow(cli_env, "config", "get-value", "together", "freeze_triggerer_heap")
    assert code == 0 and "True" in out.splitlines(), out
    off = {**cli_env, "AIRFLOW__TOGETHER__FREEZE_TRIGGERER_HEAP": "false"}
    code, out = airflow(off, "config", "get-value", "together", "freeze_triggerer_heap")
    assert code == 0 and "false" in out.splitlines() and "True" not in out.splitlines(), out


def test_cli_lists_provider_and_adds_and_tests_a_connection(cli_env, emu):
    code, out = airflow(cli_env, "providers", "get", "airflow-provider-together")
    assert code == 0 and "airflow-provider-together" in out
    code, out = airflow(cli_env, "providers", "hooks")
    assert "together_provider.hooks.together.TogetherHook" in out
    code, out = airflow(
        cli_env,
        "connections",
        "add",
        "together_cli",
        "--conn-type",
        "together",
        "--conn-host",
        emu.url,
        "--conn-password",
        emu.api_key,
    )
    assert code == 0, out
    assert emu.api_key not in out
    code, out = airflow(cli_env, "connections", "test", "together_cli")
    assert code == 0 and "Connection success" in out, out
    assert emu.api_key not in out


def test_example_dag_discovery_finds_the_provider_module(tmp_path):
    """With example DAGs on, Airflow 3 imports each provider's distribution name as a module to look
    for its example_dags, and logs an error with a traceback where that import fails."""
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__CORE__LOAD_EXAMPLES="True",
        AIRFLOW__CORE__DAGS_FOLDER=str(tmp_path / "dags"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path}/airflow.db",
    )
    (tmp_path / "dags").mkdir()
    code, out = airflow(env, "db", "migrate")
    assert code == 0, out
    code, out = airflow(env, "dags", "reserialize")
    assert code == 0, out
    if AIRFLOW_V_3_0_PLUS:  # the discovery ran: Airflow 2 has no DAG bundles and no such discovery
        assert "DAG bundles loaded: dags-folder, example_dags" in out
    assert "Could not load provider module" not in out
    assert "airflow_provider_together" not in out
    assert importlib.import_module("airflow_provider_together").get_provider_info() == get_provider_info()
