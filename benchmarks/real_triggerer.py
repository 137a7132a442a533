"""Issue 17: thousands of deferred BatchCompletionSensor waits in Airflow's own triggerer process.

    .venv/bin/python -m benchmarks.run --only real_triggerer [--quick]
    .venv/bin/python -m benchmarks.real_triggerer --phases mapped:100,start:100,end:1000 [--interval 20]

Runs the e2e stack (tests/e2e/stack.py: Postgres, Redis, the emulator, moto, api-server, scheduler,
dag-processor) with one Celery worker and one triggerer whose ``[triggerer] capacity`` is raised, and the
DAGs of benchmarks/dags/bench_real_triggerer.py. Each phase gets a fresh triggerer (a clean RSS baseline)
running one heartbeat trigger (benchmarks/heartbeat_trigger.py, 0.1 s), then N waits on N emulator
batches that stay IN_PROGRESS, started with ``start_from_trigger=True`` (one DAG run each) or mapped (one
run, each map index checking once on the worker first). After a steady window the emulator's clock moves
every batch to COMPLETED at once.

Two phases measure others in the same stack: ``null`` (benchmarks/null_trigger.py: as much of a wait
as Airflow sees, no provider code; Airflow's own cost per trigger) and ``openai`` (the openai provider's
OpenAIBatchTrigger against benchmarks/openai_stub.py, installed into out/bench/openai-site for that
phase's triggerer only). ``mode:N:knob`` gives one phase's triggerer settings of its own (KNOBS).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, machine_load, median, percentile

DAG_FILE = ROOT / "benchmarks" / "dags" / "bench_real_triggerer.py"
# Airflow's own text (airflow/jobs/triggerer_job_runner.py, TriggerRunner.block_watchdog).
BLOCKED_TEXT = "Triggerer's async thread was blocked"
# Celery's line for each task run a worker finished: one per execute until deferral, one per resume.
CELERY_DONE = re.compile(r"Task \S+\[[0-9a-f-]+\] (?:succeeded|raised unexpected|failed) in ([0-9.]+)s")
FOREVER = 10_000_000.0
# How the N waits start: a run each, deferred by the scheduler (resumed on a worker, or ended in the
# triggerer), or one run whose mapped sensor checks on a worker first.
DAG_IDS = {
    "start": "bench_rt_start",
    "end": "bench_rt_end",
    "mapped": "bench_rt_mapped",
    "null": "bench_rt_null",
    "openai": "bench_rt_openai",
}
HOW = {
    "start": "start_from_trigger",
    "end": "start_from_trigger + end_from_trigger",
    "mapped": "mapped, worker first",
    "null": "Airflow's floor: a trigger with no provider code, started and ended in the triggerer",
    "openai": "the anchor: OpenAIBatchTrigger started in the triggerer, resumed on a worker",
}
_CREATE_CONCURRENCY = 32
# A phase's optional third field: settings of that phase's triggerer only.
KNOBS: dict[str, dict[str, str]] = {
    "": {},
    # Airflow's per-trigger greenback portal, for a deployment whose triggers make no sync SDK call.
    "nogb": {"AIRFLOW_DISABLE_GREENBACK_PORTAL": "true"},
    # The provider's one-time freeze of the triggerer's startup heap, off.
    "nofreeze": {"AIRFLOW__TOGETHER__FREEZE_TRIGGERER_HEAP": "false"},
}


def _openai_site(out: Path) -> Path:
    """The openai provider and what it needs beyond .venv, in a folder of their own that only the anchor
    phase's triggerer has on its path (the provider is a comparison: it never reaches .venv)."""
    import subprocess

    site = out / "openai-site"
    if (site / "airflow" / "providers" / "openai").is_dir():
        return site
    out.mkdir(parents=True, exist_ok=True)
    report = out / "openai-site.json"
    pip = [sys.executable, "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [*pip, "--dry-run", "--report", str(report), "apache-airflow-providers-openai"], check=True
    )
    install = json.loads(report.read_text())["install"]
    wanted = [f"{item['metadata']['name']}=={item['metadata']['version']}" for item in install]
    subprocess.run([*pip, "--no-deps", "--target", str(site), *wanted], check=True)
    return site


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (its exited children not counted)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_rss(pid: int) -> int:
    from tests.e2e.processes import descendants

    total = 0
    for one in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


async def _create_batches(url: str, key: str, count: int) -> list[str]:
    import aiohttp

    headers = {"Authorization": f"Bearer {key}"}
    line = {
        "custom_id": "rt-0",
        "body": {"model": "bench/model", "messages": [{"role": "user", "content": "hi"}]},
    }
    async with aiohttp.ClientSession(headers=headers) as session:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch-api")
        form.add_field("file_name", "real-triggerer.jsonl")
        form.add_field("file", json.dumps(line) + "\n", filename="real-triggerer.jsonl")
        async with session.post(f"{url}/v1/files/upload", data=form) as answer:
            answer.raise_for_status()
            file_id = (await answer.json())["id"]
        gate = asyncio.Semaphore(_CREATE_CONCURRENCY)
        body = {"endpoint": "/v1/chat/completions", "input_file_id": file_id}
        ids: list[str] = []

        async def one() -> None:
            async with gate, session.post(f"{url}/v1/batches", json=body) as answer:
                answer.raise_for_status()
                ids.append((await answer.json())["job"]["id"])

        await asyncio.gather(*(one() for _ in range(count)))
    return ids


def _task_instances(api: Any, dag_id: str, task_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        body = {"dag_ids": [dag_id], "task_ids": [task_id], "page_limit": 100, "page_offset": len(found)}
        page = api._call("POST", "/dags/~/dagRuns/~/taskInstances/list", json=body)["task_instances"]
        found.extend(page)
        if len(page) < 100:
            return found


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _lags(path: Path, start: float, end: float) -> list[float]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        at, lag = line.split()
        if start <= float(at) <= end:
            out.append(float(lag))
    return out


def _collections(gc_dir: Path, pids: set[int], start: float, end: float) -> dict[int, list[float]]:
    """gc_probe's lines of these processes between ``start`` and ``end``, by generation."""
    found: dict[int, list[float]] = {}
    for pid in pids:
        path = gc_dir / f"gc-{pid}.log"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            at, generation, took, _collected = line.split()
            if start <= float(at) <= end:
                found.setdefault(int(generation), []).append(float(took))
    return found


def _lag_summary(lags: list[float]) -> dict[str, float | None]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 1)

    return {
        "lag_p50_ms": ms(percentile(lags, 0.5)),
        "lag_p99_ms": ms(percentile(lags, 0.99)),
        "lag_max_ms": ms(max(lags) if lags else None),
        "lag_samples": len(lags),
    }


class Bench:
    def __init__(self, out: Path, interval: float, capacity: int, adaptive: bool = False) -> None:
        from tests.e2e.stack import Stack

        self.out = out
        self.interval = interval
        self.adaptive = adaptive
        self.samples_dir = Path(tempfile.mkdtemp(prefix="bench-rt-"))
        self.gc_dir = self.samples_dir / "gc"
        self.gc_dir.mkdir()
        self.stack = Stack(
            triggerers=1,
            worker_queues=(("default",),),
            extra_env={
                "AIRFLOW__TRIGGERER__CAPACITY": str(capacity),
                "BENCH_RT_POLL_INTERVAL": str(interval),
                "BENCH_RT_ADAPTIVE": "1" if adaptive else "0",
                # The heartbeat trigger's module, and gc_probe's sitecustomize, which logs every
                # collection of 20 ms or more; DAG files and the provider need nothing from here.
                "PYTHONPATH": os.pathsep.join((str(ROOT), str(ROOT / "benchmarks" / "gc_probe"))),
                "BENCH_GC_LOG": str(self.gc_dir),
                # Thousands of runs are triggered at once: let the scheduler take more per loop.
                "AIRFLOW__SCHEDULER__MAX_DAGRUNS_PER_LOOP_TO_SCHEDULE": "500",
                "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "1000",
            },
            extra_dags=[DAG_FILE],
            # The default budget (25 requests/s) would stretch 1,000 waits at 20 s to one poll per 40 s
            # (README, "Many waits in one triggerer"): the bench measures the interval it sets.
            connection_extra={"max_requests_per_second": max(25.0, 2 * capacity / interval)},
        )
        self.triggerer = "triggerer-1"
        self.phase_count = 0
        self.openai: Any = None

    def start(self) -> None:
        self.stack.start()
        self.stack.wait_dags(set(DAG_IDS.values()) | {"bench_rt_heartbeat"}, timeout=300)

    def fresh_triggerer(self, env: dict[str, str]) -> None:
        """A new triggerer process, so each phase's baseline holds no memory of the last."""
        if self.phase_count or env:
            old = self.stack.airflow.pop(self.triggerer)
            old.stop()
            self.triggerer = f"triggerer-{self.phase_count + 2}"
            self.stack._start_triggerer(self.triggerer, env)
        self.phase_count += 1

    def openai_env(self) -> dict[str, str]:
        """The anchor's triggerer: the openai provider on its path, a connection to the stub, and the
        provider's heap freeze off (the warm-up wait is this provider's), as a user without it runs."""
        from benchmarks.common import ServerProcess, bench_env

        if self.openai is None:
            argv = [sys.executable, "-m", "benchmarks.openai_stub", "--port", "0"]
            log = self.samples_dir / "openai-stub.log"
            self.openai = ServerProcess(argv, env=bench_env(self.out), log=log).start()
        paths = (str(_openai_site(self.out)), self.stack.env.get("PYTHONPATH", ""))
        connection = {"conn_type": "openai", "host": f"{self.openai.url}/v1", "password": "sk-bench"}
        return {
            "PYTHONPATH": os.pathsep.join(p for p in paths if p),
            "AIRFLOW_CONN_OPENAI_BENCH": json.dumps(connection),
            **KNOBS["nofreeze"],
        }

    def _openai_log(self, method: str = "GET") -> Any:
        answer = self.stack.emulator.session.request(
            method, f"{self.openai.url}/_emulator/requests", timeout=30
        )
        return answer.json()

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each part of the stack: the triggerer's supervisor and its runner apart,
        every other service with its child processes (PostgreSQL's backends, the worker's tasks)."""
        from tests.e2e.processes import descendants

        found: dict[str, float] = {}
        supervisor = self._service(self.triggerer).pid
        found["triggerer supervisor"] = _cpu_seconds(supervisor)
        found["triggerer runner"] = sum(_cpu_seconds(p) for p in descendants(supervisor))
        for service in [*self.stack.infra, *self.stack.airflow.values()]:
            if service.name == self.triggerer or not service.alive():
                continue
            name = "worker" if service.name.startswith("worker") else service.name
            found[name] = found.get(name, 0.0) + sum(
                _cpu_seconds(p) for p in [service.pid, *descendants(service.pid)]
            )
        return found

    def _service(self, name: str) -> Any:
        return self.stack.airflow[name]

    def _log_size(self, name: str) -> int:
        path = self._service(name).log_path
        return path.stat().st_size if path.exists() else 0

    def _log_since(self, name: str, offset: int) -> str:
        with open(self._service(name).log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def _polled_ids(self, ids: set[str]) -> set[str]:
        seen = set()
        for entry in self.stack.emulator.requests_log():
            path = entry.get("path", "")
            if entry.get("method") == "GET" and path.startswith("/v1/batches/"):
                batch = path.rsplit("/", 1)[-1]
                if batch in ids:
                    seen.add(batch)
        return seen

    def _deferred(self, dag_id: str, label: str) -> int:
        tis = _task_instances(self.stack.api, dag_id, "wait")
        return sum(1 for t in tis if _of_phase(t, label) and t["state"] == "deferred")

    def _trigger_runs(self, dag_id: str, confs: list[dict[str, Any]], prefix: str) -> None:
        from tests.e2e.airflow_api import AirflowAPI

        apis = []
        for _ in range(4):
            api = AirflowAPI(self.stack.api.base_url, self.stack.username, self.stack.password)
            api.login()
            apis.append(api)

        def one(index: int) -> None:
            apis[index % len(apis)].trigger(dag_id, f"{prefix}-{index}", confs[index])

        with ThreadPoolExecutor(len(apis)) as pool:
            list(pool.map(one, range(len(confs))))

    def phase(self, n: int, mode: str, steady: float, knob: str = "") -> dict[str, Any]:
        """One measurement: N waits started as ``mode`` says (a key of DAG_IDS) in a fresh triggerer,
        with ``knob``'s settings (a key of KNOBS)."""
        label = f"{mode}-{n}" + (f"-{knob}" if knob else "")
        print(f"  real_triggerer: {label} ({machine_load()})", flush=True)
        self.fresh_triggerer({**KNOBS[knob], **(self.openai_env() if mode == "openai" else {})})
        stack = self.stack
        pid = self._service(self.triggerer).pid
        samples = self.samples_dir / f"{label}.lag"
        stop = self.samples_dir / f"{label}.stop"
        stack.api.trigger("bench_rt_heartbeat", f"hb-{label}", {"path": str(samples), "stop_path": str(stop)})
        _until(lambda: samples.exists() and samples.stat().st_size > 0, 180, "the heartbeat's first samples")
        # One warm-up wait first, as in the harness: the provider's imports and one-time setup (aiohttp,
        # the loop's session) are not charged to the N waits. It keeps running, one wait among N + 1.
        stack.emulator.set_durations(1, FOREVER)
        (warm_id,) = asyncio.run(_create_batches(stack.emulator.url, _api_key(), 1))
        stack.api.trigger("bench_rt_start", f"warm-{label}", {"batch_id": warm_id})
        _until(lambda: self._polled_ids({warm_id}), 300, "the warm-up wait's first poll")
        # An empty triggerer (the heartbeat only) for a while: its baseline memory and lag.
        time.sleep(15)
        base_start = time.time()
        base_rss = [_sample_rss(pid)]
        for _ in range(10):
            time.sleep(1)
            base_rss.append(_sample_rss(pid))
        empty_lags = _lags(samples, base_start, time.time())
        rss_base = median(base_rss) or 0

        stack.emulator.set_durations(1, FOREVER)
        ids = asyncio.run(_create_batches(stack.emulator.url, _api_key(), n))
        stack.emulator.set_durations(1, 2)
        worker_offset = {name: self._log_size(name) for name in stack.airflow if name.startswith("worker")}
        triggerer_offset = self._log_size(self.triggerer)
        stack.emulator.session.delete(f"{stack.emulator.url}/_emulator/requests", timeout=30)
        if mode == "openai":
            self._openai_log("DELETE")
        started = time.time()
        cpu_started = self.cpu()
        dag_id = DAG_IDS[mode]
        release = self.samples_dir / f"{label}.release"
        if mode == "mapped":
            stack.api.trigger(dag_id, label, {"batch_ids": ids})
        else:
            confs = [{"batch_id": b, "release_path": str(release)} for b in ids]
            self._trigger_runs(dag_id, confs, label)
        triggered = time.time()
        wanted = set(ids)
        if mode == "null":
            _until(lambda: self._deferred(dag_id, label) == n, 600 + n * 0.5, f"all {n} null waits deferred")
        elif mode == "openai":
            _until(
                lambda: self._deferred(dag_id, label) == n and len(self._openai_log()) >= n,
                600 + n * 0.5,
                f"all {n} OpenAI waits deferred and polled",
            )
        else:
            _until(lambda: self._polled_ids(wanted) == wanted, 600 + n * 0.5, f"all {n} waits polled once")
        all_polled = time.time()
        cpu_polled = self.cpu()
        # One interval more, so every wait's second poll falls in the steady window.
        time.sleep(self.interval)
        stack.emulator.session.delete(f"{stack.emulator.url}/_emulator/requests", timeout=30)
        if mode == "openai":
            self._openai_log("DELETE")
        window_start = time.time()
        steady_rss = []
        while time.time() - window_start < steady:
            steady_rss.append(_sample_rss(pid))
            time.sleep(1)
        window_end = time.time()
        if mode == "openai":
            log, wanted_paths = self._openai_log(), {"batch-bench"}
        else:
            log, wanted_paths = stack.emulator.requests_log(), wanted
        gets = sum(
            1
            for entry in log
            if entry.get("method") == "GET"
            and entry.get("path", "").rsplit("/", 1)[-1] in wanted_paths
            and window_start <= entry.get("time", window_start) <= window_end
        )
        steady_lags = _lags(samples, window_start, window_end)
        rss_with = median(steady_rss) or 0

        completed_at = time.time()
        cpu_completed = self.cpu()
        stack.emulator.advance(FOREVER + 60)
        release.touch()
        if mode == "openai":
            stack.emulator.session.post(f"{self.openai.url}/_emulator/complete", timeout=30)

        def finished() -> list[dict[str, Any]] | None:
            tis = [t for t in _task_instances(stack.api, dag_id, "wait") if _of_phase(t, label)]
            done = [t for t in tis if t["state"] in ("success", "failed", "skipped", "upstream_failed")]
            return tis if len(tis) == n and len(done) == n else None

        # Completion is read from each task's end_date: asking less often only keeps the bench's own REST
        # calls (N task instances a time) from competing with the finish it measures.
        tis = _until(finished, 900 + n * 1.0, f"all {n} waits to finish", every=10.0)
        all_done = time.time()
        cpu_done = self.cpu()
        states: dict[str, int] = {}
        delays = []
        for ti in tis:
            states[ti["state"]] = states.get(ti["state"], 0) + 1
            end = _parse_time(ti.get("end_date"))
            if end is not None:
                delays.append(end - completed_at)
        after_lags = _lags(samples, completed_at, all_done)

        def worker_runs_now() -> list[float]:
            runs = []
            for name, offset in worker_offset.items():
                runs += [float(s) for s in CELERY_DONE.findall(self._log_since(name, offset))]
            return runs

        # Celery logs a run after the task's state is saved: let the last lines land.
        worker_runs = worker_runs_now()
        for _ in range(30):
            time.sleep(2)
            again = worker_runs_now()
            if len(again) == len(worker_runs):
                break
            worker_runs = again
        blocked_lines = [
            line
            for line in self._log_since(self.triggerer, triggerer_offset).splitlines()
            if BLOCKED_TEXT in line
        ]
        stop.touch()
        whole_lags = _lags(samples, started, all_done)
        from tests.e2e.processes import descendants

        # The triggerer's own process is the supervisor; the trigger runner (the loop) is its child.
        collections = {
            "supervisor": _collections(self.gc_dir, {pid}, started, all_done),
            "runner": _collections(self.gc_dir, set(descendants(pid)), started, all_done),
        }
        result: dict[str, Any] = {
            "n": n,
            "mode": mode,
            "knob": knob,
            "interval_s": self.interval,
            "adaptive_polling": self.adaptive,
            "max_requests_per_second": self.stack.connection_extra["max_requests_per_second"],
            "rss_base_mb": round(rss_base / 2**20, 1),
            "rss_with_mb": round(rss_with / 2**20, 1),
            "rss_per_wait_kb": round((rss_with - rss_base) / n / 1024, 1),
            "blocked_warnings": len(blocked_lines),
            "blocked_examples": blocked_lines[:3],
            # When each happened: while the waits started, in the steady window, or while they finished.
            "blocked_by_stage": _by_stage(blocked_lines, all_polled, completed_at),
            # CPU seconds of each part of the stack while the waits started and while they finished.
            "cpu_s_starting": _cpu_delta(cpu_started, cpu_polled),
            "cpu_s_finishing": _cpu_delta(cpu_completed, cpu_done),
            "seconds_finishing": round(all_done - completed_at, 1),
            "empty": _lag_summary(empty_lags),
            **_lag_summary(steady_lags),
            "whole_run_lag_max_ms": _lag_summary(whole_lags)["lag_max_ms"],
            "completion_lag_max_ms": _lag_summary(after_lags)["lag_max_ms"],
            # The triggerer's collections of 20 ms or more from the waits' start to the last success.
            "gc_pauses_over_20ms": {
                role: {
                    str(generation): {"count": len(took), "max_ms": round(max(took) * 1000, 1)}
                    for generation, took in sorted(found.items())
                }
                for role, found in collections.items()
            },
            "seconds_to_trigger_runs": round(triggered - started, 1),
            "seconds_to_all_polled": round(all_polled - started, 1),
            "completion_to_success_p50_s": _round(percentile(delays, 0.5)),
            "completion_to_success_p99_s": _round(percentile(delays, 0.99)),
            "completion_to_success_max_s": _round(max(delays) if delays else None),
            "states": states,
            "worker_task_runs": len(worker_runs),
            "worker_seconds": round(sum(worker_runs), 1),
            "worker_seconds_per_wait": round(sum(worker_runs) / n, 2),
            "gets_in_window": gets,
            "gc_frozen": "out of the garbage collector's reach" in self._log_since(self.triggerer, 0),
            "requests_per_wait_per_interval": round(
                gets / n / ((window_end - window_start) / self.interval), 3
            ),
            "steady_window_s": round(window_end - window_start, 1),
            "worker_slots": int(os.environ.get("BENCH_RT_WORKER_SLOTS", "8")),
        }
        print(f"    {json.dumps(result)}", flush=True)
        return result

    def close(self, keep_logs: Path | None) -> None:
        try:
            if keep_logs is not None:
                self.stack.collect(keep_logs)
        finally:
            if self.openai is not None:
                self.openai.stop()
            self.stack.stop()
            self.stack.remove()
            shutil.rmtree(self.samples_dir, ignore_errors=True)


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 1) for name in after}


def _by_stage(lines: list[str], all_polled: float, completed_at: float) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {"starting": [], "steady": [], "finishing": []}
    for line in lines:
        at = _parse_time(line.split(" ", 1)[0])
        took = re.search(r"blocked for ([0-9.]+) seconds", line)
        if at is None or took is None:
            continue
        stage = "starting" if at <= all_polled else "steady" if at <= completed_at else "finishing"
        stages[stage].append(float(took.group(1)))
    return stages


def _of_phase(ti: dict[str, Any], label: str) -> bool:
    run_id = str(ti.get("dag_run_id") or ti.get("run_id"))
    return run_id == label or run_id.startswith(label + "-")


def _api_key() -> str:
    from tests.e2e.stack import TEST_API_KEY

    return TEST_API_KEY


def _sample_rss(pid: int) -> int:
    return _tree_rss(pid)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _until(ready: Any, timeout: float, what: str, every: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = ready()
        except Exception as exc:  # a REST call during a busy moment: try again
            print(f"    (waiting for {what}: {type(exc).__name__}: {str(exc)[:200]})", flush=True)
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def measure(
    out: Path, phases: list[tuple[Any, ...]], interval: float, steady: float, adaptive: bool = False
) -> list[dict[str, Any]]:
    bench = Bench(out, interval, capacity=max(phase[1] for phase in phases) + 100, adaptive=adaptive)
    results = []
    try:
        bench.start()
        for mode, n, *knob in phases:
            results.append(bench.phase(n, mode, steady, *knob))
    finally:
        bench.close(out / "logs" / "real_triggerer")
    return results


def describe(result: dict[str, Any]) -> str:
    return (
        f"RSS +{result['rss_per_wait_kb']} KB/wait; lag p50/p99/max "
        f"{result['lag_p50_ms']}/{result['lag_p99_ms']}/"
        f"{result['lag_max_ms']} ms (whole run max {result['whole_run_lag_max_ms']}); "
        f"{result['blocked_warnings']} blocked warnings; completion->success p50/p99 "
        f"{result['completion_to_success_p50_s']}/{result['completion_to_success_p99_s']} s; worker "
        f"{result['worker_seconds_per_wait']} s/wait ({result['worker_task_runs']} runs); "
        f"{result['requests_per_wait_per_interval']} GETs/wait/interval"
    )


def suite(harness: Any) -> None:
    from benchmarks.harness import verdict

    missing = _missing_e2e_parts()
    if missing:
        harness.table.add("17", "-", "real triggerer", f"skipped: {missing}")
        harness.results["real_triggerer"] = {"skipped": missing}
        return
    phases: list[tuple[Any, ...]] = [("mapped", 100), ("start", 100), ("end", 100)]
    if not harness.quick:
        phases += [("start", 1_000), ("end", 1_000), ("null", 1_000)]
    phases.append(("openai", 100))
    largest_n = max(phase[1] for phase in phases if phase[0] == "end")
    interval = 20.0
    results = measure(harness.out, phases, interval, 30.0 if harness.quick else 60.0)
    for result in results:
        largest = result["mode"] == "end" and result["n"] == largest_n and result["n"] >= 1_000
        target = ""
        ok = None
        if largest:
            target = "no blocked; lag p99 < 20, max < 200 ms; < 20 KB/wait; p99 < interval + 15 s"
            ok = (
                result["blocked_warnings"] == 0
                and (result["lag_p99_ms"] or 0) < 20
                and (result["lag_max_ms"] or 0) < 200
                and result["rss_per_wait_kb"] < 20
                and (result["completion_to_success_p99_s"] or 1e9) < interval + 15
            )
        subject = {
            "null": "a no-provider trigger in Airflow's triggerer",
            "openai": "OpenAIBatchTrigger in Airflow's triggerer",
        }.get(result["mode"], "BatchCompletionSensor in Airflow's triggerer")
        case = f"{result['n']:,} waits ({HOW[result['mode']]})"
        harness.table.add("17", case, subject, describe(result), target, verdict(ok))
    harness.results["real_triggerer"] = summary(results)


def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """``results.json``'s ``real_triggerer``: the figures of the largest plain ``end`` phase, every
    phase, Airflow's floor (the largest ``null`` phase) and the anchor."""

    def largest(mode: str, knob: str = "") -> dict[str, Any] | None:
        found = [r for r in results if r["mode"] == mode and r.get("knob", "") == knob]
        return max(found, key=lambda r: r["n"]) if found else None

    main = largest("end") or {}
    keys = ("n", "rss_per_wait_kb", "lag_p99_ms", "lag_max_ms", "blocked_warnings")
    keys += ("completion_to_success_p99_s", "worker_seconds_per_wait")
    return {
        **{key: main.get(key) for key in keys},
        "phases": results,
        "airflow_floor": largest("null"),
        "openai_anchor": largest("openai"),
    }


def _missing_e2e_parts() -> str:
    """The e2e stack's needs (make e2e installs them: the [e2e] extra, PostgreSQL and Redis)."""
    import importlib.util
    import shutil

    for module in ("psycopg2", "redis", "airflow.providers.celery"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"no {module} (run make e2e once: it installs the [e2e] extra)"
    if shutil.which("redis-server") is None:
        return "no redis-server (tests/e2e/install_system_deps.sh)"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench")
    parser.add_argument(
        "--phases",
        default="start:100,end:100",
        help=f"mode:N[:knob], comma-separated; modes: {', '.join(DAG_IDS)}; knobs: "
        + ", ".join(filter(None, KNOBS)),
    )
    parser.add_argument("--interval", type=float, default=20.0)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--adaptive", action="store_true", help="the sensors' adaptive polling (default off)")
    args = parser.parse_args()
    phases = []
    for item in filter(None, args.phases.split(",")):
        mode, n, *knob = item.split(":")
        if mode not in DAG_IDS or any(k not in KNOBS for k in knob):
            parser.error(f"unknown phase {item!r}")
        phases.append((mode, int(n), *knob))
    results = measure(args.out.resolve(), phases, args.interval, args.steady, args.adaptive)
    path = args.out / "real_triggerer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    # The same key make bench writes, merged into whatever results.json already holds.
    merged = args.out / "results.json"
    everything = json.loads(merged.read_text()) if merged.exists() else {}
    everything["real_triggerer"] = summary(results)
    merged.write_text(json.dumps(everything, indent=2, default=str))
    print(f"written {path} and {merged} (key real_triggerer)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
