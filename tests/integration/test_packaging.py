"""The provider as Airflow sees it: entry point, connection type, CLI, and what provider info names."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from together_provider import get_provider_info

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
