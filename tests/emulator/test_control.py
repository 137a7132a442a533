"""The emulator's control API and command line: clock, latency, request log, reset, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.emulator.helpers import chat_line, submit
from together_provider.testing import emulator as emulator_pkg


def test_latency_and_clock_control(emu, http):
    clock = requests.post(f"{emu.url}/_emulator/clock", json={"latency_ms": 150, "processing_seconds": 0})
    assert clock.json()["latency_ms"] == 150
    started = time.monotonic()
    http.get(f"{emu.url}/v1/batches")
    assert time.monotonic() - started >= 0.15
    assert requests.post(f"{emu.url}/_emulator/clock", json={"latency_ms": -1}).status_code == 400
    requests.post(f"{emu.url}/_emulator/reset").raise_for_status()
    assert requests.get(f"{emu.url}/_emulator/clock").json()["latency_ms"] == 0


def test_request_log_skips_control_routes_and_reset_clears_everything(emu, http):
    submit(emu, http, [chat_line("a")])
    requests.get(f"{emu.url}/_emulator/health")
    log = requests.get(f"{emu.url}/_emulator/requests").json()
    assert [(entry["method"], entry["path"]) for entry in log] == [
        ("POST", "/v1/files/upload"),
        ("POST", "/v1/batches"),
    ]
    assert all(isinstance(entry["time"], float) for entry in log)
    requests.post(f"{emu.url}/_emulator/reset").raise_for_status()
    assert requests.get(f"{emu.url}/_emulator/requests").json() == []
    assert http.get(f"{emu.url}/v1/batches").json() == []
    assert http.get(f"{emu.url}/v1/files").json() == {"data": []}


# The console script


def test_cli_prints_url_and_stops_on_sigterm(tmp_path):
    provider_root = Path(emulator_pkg.__file__).resolve().parents[3]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(provider_root), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "together_provider.testing.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--data-dir",
            str(tmp_path),
            "--validating-seconds",
            "0",
            "--processing-seconds",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("together-emulator listening on http://127.0.0.1:"), process.stderr.read()
        url = line.rsplit(" ", 1)[-1]
        assert requests.get(f"{url}/_emulator/health", timeout=5).json() == {"ok": True}
        assert requests.get(f"{url}/v1/batches", headers={"Authorization": "Bearer cli-key"}).json() == []
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
