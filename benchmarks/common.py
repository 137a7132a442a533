"""What every benchmark shares: server processes, the emulator's control routes, memory, statistics, and
the one-line JSON protocol between the orchestrator (run.py) and the measuring subprocesses."""

from __future__ import annotations

import json
import math
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-not-secret"
RESULT_PREFIX = "BENCH_RESULT "
_START_TIMEOUT = 60.0


# ---- results between processes ----------------------------------------------------------------------


def emit(result: dict[str, Any]) -> None:
    """A measuring subprocess hands back its result as one prefixed JSON line on stdout."""
    # On a line of its own even when a log line before it had no newline.
    print("\n" + RESULT_PREFIX + json.dumps(result), flush=True)


def run_measurement(
    argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> dict[str, Any]:
    """Run a measuring subprocess to its end and return what it emitted. Its stdout and stderr both go
    to ``log``: triggers log every poll, and output held in a pipe would be memory in the wrong place."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as sink:
        done = subprocess.run(
            list(argv), env=env, stdout=sink, stderr=subprocess.STDOUT, timeout=timeout, cwd=ROOT
        )
    result = None
    with open(log, errors="replace") as lines:
        for line in lines:
            if line.startswith(RESULT_PREFIX):
                result = json.loads(line[len(RESULT_PREFIX) :])
    if result is None:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"{' '.join(argv[:4])} exited {done.returncode} without a result:\n{tail}")
    return result


def bench_env(out: Path, **extra: str) -> dict[str, str]:
    """The environment for a subprocess: Airflow kept inside out/, never the user's ~/airflow."""
    env = dict(os.environ)
    env["AIRFLOW_HOME"] = str((out / "airflow_home").resolve())
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


# ---- server processes ---------------------------------------------------------------------------------


class ServerProcess:
    """A server in its own process that prints ``... listening on http://HOST:PORT`` once ready."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str] | None = None, log: Path | None = None):
        self.argv = list(argv)
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> ServerProcess:
        stderr: Any = subprocess.DEVNULL
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            stderr = open(self.log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=stderr, text=True, env=self.env, cwd=ROOT
        )
        if self.log is not None:
            stderr.close()  # the child holds its own descriptor
        assert self.proc.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                if "listening on" in line:
                    self.url = line.strip().rsplit(" ", 1)[-1]
                    return self
                if not line:
                    break
            if self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.argv[0]} did not start (see {self.log})")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def emulator_process(out: Path, *, latency_ms: float = 0.0) -> ServerProcess:
    """The emulator CLI in its own process, so its work never shows up as the triggerer's lag."""
    cli = Path(sys.executable).parent / "together-emulator"
    argv = [str(cli), "--host", "127.0.0.1", "--port", "0", "--api-key", API_KEY]
    argv += [
        "--latency-ms",
        str(latency_ms),
        "--validating-seconds",
        "0",
        "--data-dir",
        str(out / "emulator"),
    ]
    (out / "emulator").mkdir(parents=True, exist_ok=True)
    return ServerProcess(argv, log=out / "logs" / "emulator.log")


class Control:
    """The emulator's /_emulator/ routes (and the same routes on the bench's OpenAI stub)."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {API_KEY}"

    def requests_log(self) -> list[dict[str, Any]]:
        response = self.session.get(f"{self.url}/_emulator/requests", timeout=120)
        response.raise_for_status()
        return response.json()

    def clear_log(self) -> None:
        self.session.delete(f"{self.url}/_emulator/requests", timeout=60).raise_for_status()

    def set_latency(self, latency_ms: float) -> None:
        self.session.post(f"{self.url}/_emulator/clock", json={"latency_ms": latency_ms}, timeout=60)

    def synthetic_file(self, size: int) -> dict[str, Any]:
        response = self.session.post(f"{self.url}/_emulator/files", json={"bytes": size}, timeout=600)
        response.raise_for_status()
        return response.json()

    def delete_file(self, file_id: str) -> None:
        self.session.delete(f"{self.url}/v1/files/{file_id}", timeout=60)


def together_conn_env(url: str, requests_per_second: float | None = None) -> dict[str, str]:
    """The connection the triggers use. ``requests_per_second`` sets the provider's per-connection request
    budget (the extra ``max_requests_per_second``); None keeps the provider's default."""
    conn: dict[str, Any] = {"conn_type": "together", "host": url, "password": API_KEY}
    if requests_per_second is not None:
        conn["extra"] = {"max_requests_per_second": requests_per_second}
    return {"AIRFLOW_CONN_TOGETHER_DEFAULT": json.dumps(conn)}


# ---- memory ---------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_bytes() -> int:
    return _status_kb("VmRSS") * 1024


def peak_rss_bytes() -> int:
    return _status_kb("VmHWM") * 1024


def reset_peak_rss() -> bool:
    """Start the peak-RSS counter afresh (Linux >= 4.0), so imports before the baseline do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


# ---- statistics and formatting ------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def spread(values: Sequence[float]) -> str:
    """min-max of repeated measurements, the honest error bar on a shared machine."""
    if not values:
        return "-"
    return f"{min(values):.3g}-{max(values):.3g}"


def fmt_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}"


def fmt_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def machine_load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f}/{five:.2f} on {os.cpu_count()} cores"


async def serve_until_stopped(app: Any, host: str, port: int, name: str) -> None:
    """Serve an aiohttp ``app`` until SIGTERM or SIGINT. The first line printed, with the bound address,
    is what the harness waits for before it uses the server."""
    import asyncio

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"{name} listening on http://{host}:{runner.addresses[0][1]}", flush=True)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
