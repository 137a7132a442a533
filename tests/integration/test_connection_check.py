"""The connection form's "Test": names the host it tried, and answers at once when the host is down."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from together_provider.client.errors import TogetherError
from together_provider.client.settings import CHECK_CONNECT_TIMEOUT
from together_provider.hooks import together as hook_module
from together_provider.hooks.together import TogetherHook

from ..conftest import connection_uri_env


@pytest.fixture
def sends(monkeypatch):
    """Every request the hook's sync transport sends, with the settings it was sent with."""
    seen = []
    real = hook_module.send_sync

    def send(session, settings, request):
        seen.append(settings)
        return real(session, settings, request)

    monkeypatch.setattr(hook_module, "send_sync", send)
    return seen


def closed_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_no_key_names_the_host(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_NOKEY", json.dumps({"conn_type": "together", "host": emu.url}))
    ok, message = TogetherHook(together_conn_id="together_nokey").test_connection()
    assert not ok
    assert message.startswith(f"The Together connection to {emu.url} cannot be used: no Together API key")
    assert "unresolved" not in message
    assert emu.requests_log() == []


def test_no_key_and_no_host_names_the_default(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_BARE", json.dumps({"conn_type": "together"}))
    ok, message = TogetherHook(together_conn_id="together_bare").test_connection()
    assert not ok
    assert message.startswith("The Together connection to https://api.together.ai cannot be used")


def test_unreachable_host_is_one_short_attempt(monkeypatch, sends):
    port = closed_loopback_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DOWN", connection_uri_env(url, max_retries=4, connect_timeout=10)
    )
    ok, message = TogetherHook(together_conn_id="together_down").test_connection()
    assert not ok
    assert message.startswith(f"Could not reach the Together API at {url}: list batches: connection failed")
    assert len(sends) == 1
    assert sends[0].connect_timeout == CHECK_CONNECT_TIMEOUT
    assert sends[0].retry.max_attempts == 1


def test_check_is_not_retried_where_calls_are(emu, monkeypatch):
    """A dropped connection: the check reports it after one request, a task's call retries it."""
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_FLAKY", connection_uri_env(emu.url, max_retries=1))
    emu.set_faults({"method": "GET", "path": "^/v1/batches$", "kind": "drop", "times": None})
    ok, message = TogetherHook(together_conn_id="together_flaky").test_connection()
    assert not ok and message.startswith(f"Could not reach the Together API at {emu.url}")
    assert len(emu.requests_log(method="GET", path="/v1/batches")) == 1
    with pytest.raises(TogetherError, match="list batches"):
        TogetherHook(together_conn_id="together_flaky").list_batches()
    assert len(emu.requests_log(method="GET", path="/v1/batches")) == 3


def test_a_shorter_configured_connect_timeout_is_kept(emu, monkeypatch, sends):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_QUICK", connection_uri_env(emu.url, connect_timeout=0.5))
    ok, message = TogetherHook(together_conn_id="together_quick").test_connection()
    assert ok, message
    assert message.startswith(f"Connected to {emu.url}: the API key works")
    assert [s.connect_timeout for s in sends] == [0.5]
    assert len(emu.requests_log()) == 1


def test_cli_needs_test_connection_enabled_and_names_an_unreachable_host(airflow_db):
    """As docs/connection.md says: Airflow refuses to test until AIRFLOW__CORE__TEST_CONNECTION=Enabled."""
    url = f"http://127.0.0.1:{closed_loopback_port()}"
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__CORE__TEST_CONNECTION"}
    env["AIRFLOW_CONN_TOGETHER_CLI_DOWN"] = connection_uri_env(url, max_retries=4)
    airflow = [str(Path(sys.executable).with_name("airflow")), "connections", "test", "together_cli_down"]
    disabled = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=180)
    assert disabled.returncode == 1 and "Testing connections is disabled" in disabled.stdout + disabled.stderr
    env["AIRFLOW__CORE__TEST_CONNECTION"] = "Enabled"
    enabled = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=180)
    out = enabled.stdout + enabled.stderr
    assert "Connection failed" in out, out  # Airflow 2.11 exits 0 on a failed test, 3.x exits 1
    assert f"Could not reach the Together API at {url}: list batches: connection failed" in out


def test_an_answer_that_is_not_ok_is_a_refusal(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_WRONGKEY", connection_uri_env(emu.url, key="tk-wrong"))
    ok, message = TogetherHook(together_conn_id="together_wrongkey").test_connection()
    assert not ok and message.startswith(f"Together API at {emu.url} refused the check: ")
    assert "401" in message


def test_one_batch_is_one_batch_and_the_cli_success_line_is_airflows(airflow_db, tmp_path, monkeypatch):
    """A fresh emulator, so the count is known: "1 batch". Airflow's CLI prints the hook's message only
    on failure; on success it prints its own "Connection success!", as docs/connection.md says."""
    from together_provider.testing.emulator import EmulatorServer

    from ..conftest import TEST_KEY
    from ..helpers import write_requests

    with EmulatorServer(api_key=TEST_KEY) as server:
        url = server.url
        monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_ONE", connection_uri_env(url))
        hook = TogetherHook(together_conn_id="together_one")
        hook.create_batch(hook.upload_file(write_requests(tmp_path / "in.jsonl")).id)
        ok, message = TogetherHook(together_conn_id="together_one").test_connection()
        assert ok and message == f"Connected to {url}: the API key works (1 batch visible).", message
        env = {**os.environ, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
        airflow = [str(Path(sys.executable).with_name("airflow")), "connections", "test", "together_one"]
        done = subprocess.run(airflow, env=env, capture_output=True, text=True, timeout=180)
    out = done.stdout + done.stderr
    assert done.returncode == 0 and "Connection success!" in out, out
    assert "Connected to" not in out, out
