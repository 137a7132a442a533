"""Triggerer capacity: N waits in one asyncio loop, the API in another process.

One scenario per fresh process, so RSS is this scenario's alone:

    python -m benchmarks.triggerer_capacity --impl together --url URL --ids-file ids.json \
        --interval 60 --duration 70

``--impl`` is ``together`` (BatchStatusTrigger, as the triggerer runs it), ``plain`` (one aiohttp session per
wait, benchmarks/plain_poller.py), ``openai`` (OpenAIBatchTrigger against benchmarks/openai_stub.py; run
it with .venv-bench's python) or ``idle`` (the heartbeat alone: the floor of this machine).

Memory is charged per wait after one warm-up wait has run and been cancelled, so lazy imports and
one-time setup are not divided among the N waits. Requests are counted by the server's request log, not
by the client, so a wait that shares or skips polls is measured by what actually went over the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    API_KEY,
    Control,
    bench_env,
    emit,
    fmt_bytes,
    fmt_ms,
    peak_rss_bytes,
    percentile,
    reset_peak_rss,
    rss_bytes,
    run_measurement,
    together_conn_env,
)
from benchmarks.loop_lag import LagMonitor

if TYPE_CHECKING:
    from benchmarks.harness import Harness

BATCH_GET = re.compile(r"^/v1/batches/([^/]+)$")
# The provider's per-connection request budget (extra max_requests_per_second), set far above the
# offered load where a scenario measures the event loop rather than the budget.
UNTHROTTLED = 1_000_000.0
OPENAI_KEY = "sk-bench-key-not-secret"
WARMUP_WAIT_SECONDS = 1.5
STOP_TIMEOUT = 120.0


def _together(args: argparse.Namespace) -> Callable[[str], Awaitable[Any]]:
    import aiohttp  # noqa: F401  (loaded before the baseline: every triggerer has it already)

    from together_provider.hooks.together import TogetherHook  # noqa: F401
    from together_provider.triggers.batch import BatchStatusTrigger

    async def wait(batch_id: str) -> Any:
        trigger = BatchStatusTrigger(batch_id=batch_id, poll_interval=args.interval)
        async for event in trigger.run():
            return event.payload
        return None

    return wait


def _plain(args: argparse.Namespace) -> Callable[[str], Awaitable[Any]]:
    import logging
    import sys

    from benchmarks.plain_poller import plain_wait

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def wait(batch_id: str) -> Any:
        return await plain_wait(args.url, API_KEY, batch_id, args.interval)

    return wait


def _openai(args: argparse.Namespace) -> Callable[[str], Awaitable[Any]]:
    from airflow.providers.openai.triggers.openai import OpenAIBatchTrigger

    async def wait(batch_id: str) -> Any:
        trigger = OpenAIBatchTrigger(
            conn_id="openai_default", batch_id=batch_id, poll_interval=args.interval, timeout=86400
        )
        async for event in trigger.run():
            return event.payload
        return None

    return wait


def _connections_to(port: int) -> int | None:
    try:
        import psutil
    except ImportError:
        return None
    return sum(
        1
        for conn in psutil.Process().net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == "ESTABLISHED"
    )


async def _measure(args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    make_wait = {"together": _together, "plain": _plain, "openai": _openai}.get(args.impl)
    monitor = LagMonitor()
    heartbeat = asyncio.create_task(monitor.run())
    events: list[Any] = []

    async def drain(batch_id: str) -> None:
        assert wait is not None
        events.append(await wait(batch_id))

    wait = make_wait(args) if make_wait is not None else None
    if wait is not None and args.warmup_id:
        warm = asyncio.create_task(drain(args.warmup_id))
        await asyncio.sleep(WARMUP_WAIT_SECONDS)
        warm.cancel()
        await asyncio.gather(warm, return_exceptions=True)
        events.clear()
    gc.collect()
    base = rss_bytes()
    peak_reset = reset_peak_rss()
    cpu_started = time.process_time()
    started = time.time()
    tasks = [asyncio.create_task(drain(batch_id)) for batch_id in ids] if wait is not None else []
    created = time.time() - started
    await asyncio.sleep(args.duration)
    stopped = time.time()
    cpu = time.process_time() - cpu_started
    end = rss_bytes()
    peak = peak_rss_bytes() if peak_reset else None
    monitor.stop()
    port = int(args.url.rsplit(":", 1)[-1].split("/")[0]) if args.url else 0
    connections = _connections_to(port) if port else None
    open_fds = len(os.listdir("/proc/self/fd"))
    for task in tasks:
        task.cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), STOP_TIMEOUT)
    await heartbeat
    return {
        "started": started,
        "stopped": stopped,
        "create_s": created,
        "rss_base": base,
        "rss_end": end,
        "rss_peak": peak,
        "cpu_s": cpu,
        "connections_open_at_end": connections,
        "fds_open_at_end": open_fds,
        "events": dict(Counter(str((e or {}).get("status")) for e in events if e is not None)),
        "monitor": monitor,
    }


def _analyse(args: argparse.Namespace, ids: list[str], raw: dict[str, Any]) -> dict[str, Any]:
    monitor: LagMonitor = raw.pop("monitor")
    started, stopped = raw["started"], raw["stopped"]
    log = Control(args.log_url or args.url).requests_log() if ids else []
    gets = [
        (entry["time"], BATCH_GET.match(entry["path"]).group(1), entry["status"])  # type: ignore[union-attr]
        for entry in log
        if entry["method"] == "GET" and BATCH_GET.match(entry["path"]) and started <= entry["time"] <= stopped
    ]
    gets.sort()
    wanted = set(ids)
    seen: set[str] = set()
    all_polled_at = None
    for at, batch_id, _ in gets:
        seen.add(batch_id)
        if all_polled_at is None and wanted <= seen:
            all_polled_at = at
    steady_from = started + args.warmup
    if all_polled_at is not None:
        steady_from = max(steady_from, all_polled_at + 1.0)
    window = max(stopped - steady_from, 0.0)
    lags = monitor.between(steady_from, stopped)
    every_lag = list(monitor.lags)
    steady_gets = sum(1 for at, _, _ in gets if at >= steady_from)
    steady_ok = sum(1 for at, _, status in gets if at >= steady_from and status == 200)
    n = len(ids)
    per_interval = None
    if n and window >= 5 * args.interval:
        per_interval = steady_gets / n / (window / args.interval)
    peak = raw["rss_peak"] if raw["rss_peak"] is not None else raw["rss_end"]
    return {
        "impl": args.impl,
        "label": args.label,
        "n": n,
        "distinct_batches": len(wanted),
        "interval_s": args.interval,
        "duration_s": stopped - started,
        "create_s": raw["create_s"],
        "startup_s": None if all_polled_at is None else all_polled_at - started,
        "all_polled": all_polled_at is not None or n == 0,
        "steady_window_s": window,
        "lag_samples": len(lags),
        "lag_p50_s": percentile(lags, 0.50),
        "lag_p99_s": percentile(lags, 0.99),
        "lag_max_s": max(lags) if lags else None,
        "lag_max_whole_run_s": max(every_lag) if every_lag else None,
        "gets_total": len(gets),
        "polls_per_s": steady_gets / window if window > 0 else None,
        "ok_polls_per_s": steady_ok / window if window > 0 else None,
        "gets_per_wait_per_interval": per_interval,
        "statuses": dict(Counter(str(status) for _, _, status in gets)),
        "status_429": sum(1 for _, _, status in gets if status == 429),
        "rss_base": raw["rss_base"],
        "rss_peak": raw["rss_peak"],
        "rss_end": raw["rss_end"],
        "rss_per_wait_peak": (peak - raw["rss_base"]) / n if n else None,
        "rss_per_wait_end": (raw["rss_end"] - raw["rss_base"]) / n if n else None,
        "cpu_s": raw["cpu_s"],
        "cpu_ms_per_poll": raw["cpu_s"] * 1000 / len(gets) if gets else None,
        "connections_open_at_end": raw["connections_open_at_end"],
        "fds_open_at_end": raw["fds_open_at_end"],
        "events": raw["events"],
    }


@dataclass(frozen=True)
class Scenario:
    name: str
    impl: str
    n: int
    interval: float
    duration: float
    latency_ms: float = 0.0
    warmup: float = 5.0
    # The waits share this many batches (0: one batch each): the de-duplication case.
    distinct: int = 0
    # The provider's request budget; None keeps its default.
    budget: float | None = UNTHROTTLED
    # An account limit in front of the emulator (benchmarks/rate_limit_proxy.py), requests per second.
    rate_limit: float | None = None

    @property
    def subject(self) -> str:
        names = {
            "together": "BatchStatusTrigger",
            "plain": "plain aiohttp poller",
            "openai": "OpenAIBatchTrigger",
            "idle": "heartbeat only",
        }
        name = names[self.impl]
        if self.impl == "together":
            name += (
                " (default budget)"
                if self.budget is None
                else (" (budget off)" if self.budget >= UNTHROTTLED else f" (budget {self.budget:g}/s)")
            )
        return name


def capacity_scenarios(quick: bool) -> list[Scenario]:
    slow, fast, sizes = (70.0, 30.0, (100, 1_000, 10_000)) if not quick else (15.0, 10.0, (100, 1_000))
    slow_interval = 60.0 if not quick else 10.0
    scenarios = [Scenario("idle", "idle", 0, slow_interval, 10.0)]
    for n in sizes:
        # 10,000 first polls take tens of seconds to go out, and each wait's second poll comes an
        # interval after its first: 90 s leaves a steady window that holds most second polls.
        duration = slow if n < 10_000 else 90.0
        for impl in ("together", "plain"):
            scenarios.append(
                Scenario(f"{impl}-{n}-every-{slow_interval:g}s", impl, n, slow_interval, duration, 0.0, 10.0)
            )
    # Each OpenAIBatchTrigger builds an OpenAI client and polls with blocking calls on the loop: at
    # 1,000 waits one round takes minutes, so it runs at 100.
    scenarios.append(
        Scenario(f"openai-100-every-{slow_interval:g}s", "openai", 100, slow_interval, slow, 0.0, 10.0)
    )
    for n in sizes[:2]:
        for impl in ("together", "plain"):
            scenarios.append(Scenario(f"{impl}-{n}-every-1s-50ms", impl, n, 1.0, fast, 50.0))
    scenarios.append(
        Scenario(
            "together-1000-every-1s-50ms-default-budget", "together", 1_000, 1.0, fast, 50.0, budget=None
        )
    )
    scenarios.append(Scenario("openai-100-every-1s-50ms", "openai", 100, 1.0, fast, 50.0))
    return scenarios


def run_scenario(harness: Harness, scenario: Scenario) -> dict[str, Any]:
    """One scenario in a fresh process, against a server in another process."""
    out = harness.out
    distinct = scenario.distinct or scenario.n
    # One batch more than the waits use, for the warm-up wait.
    batch_ids = harness.batches(distinct + 1) if scenario.n else []
    warmup_id = batch_ids.pop() if batch_ids else ""
    waits = [batch_ids[i % distinct] for i in range(scenario.n)] if scenario.n else []
    ids_file = out / "ids" / f"{scenario.name}.json"
    ids_file.parent.mkdir(parents=True, exist_ok=True)
    ids_file.write_text(json.dumps(waits))
    python = sys.executable
    proxy = None
    env = bench_env(out)
    if scenario.impl == "openai":
        if harness.bench_python is None:
            return {
                "scenario": scenario.name,
                "skipped": "no bench venv (.venv-bench) for the openai provider",
            }
        stub = harness.openai_stub()
        assert stub is not None
        url = log_url = stub.url
        python = str(harness.bench_python)
        conn = {"conn_type": "openai", "host": f"{url}/v1", "password": OPENAI_KEY}
        env["AIRFLOW_CONN_OPENAI_DEFAULT"] = json.dumps(conn)
    else:
        url = log_url = harness.emulator.url
        if scenario.rate_limit is not None:
            proxy = harness.rate_limit_proxy(scenario.rate_limit)
            url = log_url = proxy.url
        env.update(together_conn_env(url, scenario.budget))
    Control(harness.emulator.url if scenario.impl != "openai" else url).set_latency(scenario.latency_ms)
    Control(log_url).clear_log()
    argv = [python, "-m", "benchmarks.triggerer_capacity", "--impl", scenario.impl, "--url", url]
    argv += ["--log-url", log_url, "--ids-file", str(ids_file), "--interval", str(scenario.interval)]
    argv += ["--duration", str(scenario.duration), "--warmup", str(scenario.warmup), "--label", scenario.name]
    argv += ["--warmup-id", warmup_id]
    try:
        result = run_measurement(
            argv, env=env, log=out / "logs" / f"capacity-{scenario.name}.log", timeout=scenario.duration + 600
        )
    finally:
        if proxy is not None:
            harness.stop_server(proxy)
        Control(harness.emulator.url).set_latency(0.0)
    result.update(
        scenario=scenario.name,
        subject=scenario.subject,
        latency_ms=scenario.latency_ms,
        budget=scenario.budget,
        rate_limit=scenario.rate_limit,
    )
    return result


def describe(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    parts = [
        f"lag p50/p99/max {fmt_ms(result['lag_p50_s'])}/{fmt_ms(result['lag_p99_s'])}/"
        f"{fmt_ms(result['lag_max_s'])} ms (run incl. start: max {fmt_ms(result['lag_max_whole_run_s'])})"
    ]
    if result["n"]:
        polls = result["polls_per_s"]
        parts.append(f"{polls:.0f} polls/s" if polls is not None else "no steady window")
        if result.get("cpu_ms_per_poll") is not None:
            # Whole-run CPU (heartbeat and start included) over polls: telling only where polls are many.
            parts.append(f"CPU {result['cpu_ms_per_poll']:.1f} ms/poll")
        grown = (result["rss_peak"] or result["rss_end"]) - result["rss_base"]
        parts.append(f"RSS +{fmt_bytes(grown)} peak = {fmt_bytes(result['rss_per_wait_peak'])}/wait")
        startup = result["startup_s"]
        parts.append(
            f"all polled once after {startup:.1f} s"
            if startup is not None
            else "not all polled within the run"
        )
        if result.get("connections_open_at_end") is not None:
            parts.append(f"{result['connections_open_at_end']} TCP conns")
    return "; ".join(parts)


def suite(harness: Harness) -> None:
    results = []
    for scenario in capacity_scenarios(harness.quick):
        print(f"  capacity: {scenario.name} ({scenario.duration:g} s)", flush=True)
        result = run_scenario(harness, scenario)
        results.append(result)
        lag_ok = None if result.get("lag_p99_s") is None else result["lag_p99_s"] < 0.020
        target, verdict = "", "-"
        if scenario.n >= 10_000 and scenario.interval >= 60:
            per_wait = result.get("rss_per_wait_peak")
            memory_ok = per_wait is not None and per_wait < 10 * 1024
            target = "lag p99 < 20 ms, < 10 KB/wait"
            verdict = f"lag {'yes' if lag_ok else 'NO'}, memory {'yes' if memory_ok else 'NO'}"
        elif scenario.n >= 1_000 and scenario.interval <= 1 and scenario.latency_ms >= 50:
            target, verdict = "lag p99 < 20 ms", "yes" if lag_ok else "NO"
        harness.table.add("1", _case(scenario), scenario.subject, describe(result), target, verdict)
    harness.results["triggerer_capacity"] = results


def _case(scenario: Scenario) -> str:
    if scenario.impl == "idle":
        return "idle loop (machine floor)"
    case = f"{scenario.n:,} waits, every {scenario.interval:g} s"
    if scenario.latency_ms:
        case += f", API +{scenario.latency_ms:g} ms"
    return case


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--impl", choices=("together", "plain", "openai", "idle"), required=True)
    parser.add_argument("--url", default="", help="the API the waits poll")
    parser.add_argument("--log-url", default="", help="where the request log is, when not --url")
    parser.add_argument(
        "--ids-file", type=Path, help="JSON list of batch ids, one wait each (repeats allowed)"
    )
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=70.0)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds left out of the steady window")
    parser.add_argument("--label", default="")
    parser.add_argument(
        "--warmup-id",
        default="",
        help="a batch no wait uses, for the warm-up wait (a shared answer must not leak into the run)",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ids: list[str] = json.loads(args.ids_file.read_text()) if args.ids_file and args.impl != "idle" else []
    raw = asyncio.run(_measure(args, ids))
    emit(_analyse(args, ids, raw))


if __name__ == "__main__":
    main()
