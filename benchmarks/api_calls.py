"""API calls per wait: what N waits cost the account, counted by the server's request log.

* requests per wait per interval, with every wait on its own batch and with 10 waits per batch (what
  de-duplication of waits on the same batch saves);
* 429s under an account limit (benchmarks/rate_limit_proxy.py in front of the emulator), with the
  provider's default request budget, with the budget off, and for the plain poller;
* one unpaginated ``GET /v1/batches`` against N ``GET /v1/batches/{id}``: time and bytes, list sizes
  100, 1,000 and 10,000, at 0 and 50 ms of API latency. The list-vs-gets runner is this module's
  ``__main__``:

    python -m benchmarks.api_calls --url URL --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

from benchmarks.common import API_KEY, bench_env, emit, fmt_bytes, run_measurement, together_conn_env
from benchmarks.triggerer_capacity import UNTHROTTLED, Scenario, run_scenario

if TYPE_CHECKING:
    from benchmarks.harness import Harness

# The pool the list-vs-gets client uses for the N gets; the provider's own shared pool decides in the run.
_GET_CONCURRENCY = 32


def _wire_bytes(response: Any) -> int:
    """Bytes both ways for one exchange, near enough: request and status lines, headers, body."""
    request = response.request_info
    sent = len(f"{request.method} {request.url.raw_path_qs} HTTP/1.1\r\n") + 2
    sent += sum(len(k) + len(v) + 4 for k, v in request.headers.items())
    received = len(f"HTTP/1.1 {response.status} {response.reason}\r\n") + 2
    received += sum(len(k) + len(v) + 4 for k, v in response.headers.items())
    return sent + received


async def _list_vs_gets(url: str, repeats: int) -> dict[str, Any]:
    import aiohttp

    from together_provider.hooks.together import TogetherHook

    hook = TogetherHook()
    try:
        batches = await hook.alist_batches()  # warm: connection, settings, lazy imports
        list_times = []
        for _ in range(repeats):
            started = time.perf_counter()
            batches = await hook.alist_batches()
            list_times.append(time.perf_counter() - started)
        ids = [batch.id for batch in batches]
        get_times = []
        for _ in range(repeats):
            started = time.perf_counter()
            await asyncio.gather(*(hook.aget_batch(batch_id) for batch_id in ids))
            get_times.append(time.perf_counter() - started)
    finally:
        await hook.aclose()

    gate = asyncio.Semaphore(_GET_CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=_GET_CONCURRENCY)
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": f"Bearer {API_KEY}"}
    ) as s:
        async with s.get(f"{url}/v1/batches") as response:
            body = await response.read()
            list_bytes = len(body) + _wire_bytes(response)
        get_bytes = 0

        async def one(batch_id: str) -> None:
            nonlocal get_bytes
            async with gate, s.get(f"{url}/v1/batches/{batch_id}") as response:
                get_bytes += len(await response.read()) + _wire_bytes(response)

        await asyncio.gather(*(one(batch_id) for batch_id in ids))
    return {
        "size": len(ids),
        "list_s": statistics.median(list_times),
        "list_s_all": list_times,
        "gets_s": statistics.median(get_times),
        "gets_s_all": get_times,
        "list_bytes": list_bytes,
        "gets_bytes": get_bytes,
    }


def _list_rows(harness: Harness) -> list[dict[str, Any]]:
    sizes = (100, 1_000, 10_000) if not harness.quick else (100, 1_000)
    rows = []
    for size in sizes:
        harness.batches(size)
        for latency in (0.0, 50.0):
            # The emulator holds exactly the batches made so far; sizes are made in increasing order.
            if len(harness.batch_ids) != size:
                harness.notes.append(
                    f"list-vs-gets at {size}: the emulator held {len(harness.batch_ids)} batches"
                )
            harness.control.set_latency(latency)
            repeats = 3 if size <= 1_000 else 1
            print(f"  api_calls: list vs {size:,} gets, API +{latency:g} ms", flush=True)
            try:
                result = run_measurement(
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.api_calls",
                        "--url",
                        harness.emulator.url,
                        "--repeats",
                        str(repeats),
                    ],
                    env=bench_env(harness.out, **together_conn_env(harness.emulator.url, UNTHROTTLED)),
                    log=harness.out / "logs" / f"list-vs-gets-{size}-{latency:g}ms.log",
                )
            finally:
                harness.control.set_latency(0.0)
            result["latency_ms"] = latency
            result["concurrency"] = _GET_CONCURRENCY
            # How many gets one list is worth, in time and in bytes.
            result["break_even_gets_time"] = result["list_s"] / (result["gets_s"] / result["size"])
            result["break_even_gets_bytes"] = result["list_bytes"] / (result["gets_bytes"] / result["size"])
            rows.append(result)
            harness.table.add(
                "2",
                f"1 list vs {result['size']:,} gets, API +{latency:g} ms",
                "TogetherHook.alist_batches / aget_batch",
                f"list {result['list_s'] * 1000:.0f} ms, {fmt_bytes(result['list_bytes'])}; "
                f"gets {result['gets_s'] * 1000:.0f} ms, {fmt_bytes(result['gets_bytes'])} "
                f"({_GET_CONCURRENCY} in flight); one list = {result['break_even_gets_time']:.0f} gets "
                f"in time, {result['break_even_gets_bytes']:.0f} in bytes",
            )
    return rows


def _share_scenarios(quick: bool) -> list[Scenario]:
    duration = 20.0 if not quick else 10.0
    scenarios = []
    for impl in ("together", "plain"):
        for distinct in (100, 10):
            scenarios.append(
                # The budget off: 100 polls a second would otherwise be capped at its default.
                Scenario(f"{impl}-100-on-{distinct}-batches", impl, 100, 1.0, duration, distinct=distinct)
            )
    n, rate = (1_000, 100.0) if not quick else (300, 30.0)
    limited = 30.0 if not quick else 15.0
    for impl, budget in (("together", None), ("together", UNTHROTTLED), ("plain", None)):
        scenarios.append(
            Scenario(
                f"{impl}-{n}-every-5s-limit-{rate:g}-{'default' if budget is None else 'off'}",
                impl,
                n,
                5.0,
                limited,
                budget=budget,
                rate_limit=rate,
            )
        )
    return scenarios


def _rate(result: dict[str, Any]) -> str:
    rate = result.get("polls_per_s")
    return "-" if rate is None else f"{rate:.0f}"


def _every(result: dict[str, Any]) -> str:
    rate = result.get("ok_polls_per_s")
    if not rate:
        return "-"
    return f"{result['n'] / rate:.1f} s"


def suite(harness: Harness) -> None:
    lists = _list_rows(harness)
    shares = []
    for scenario in _share_scenarios(harness.quick):
        print(f"  api_calls: {scenario.name} ({scenario.duration:g} s)", flush=True)
        result = run_scenario(harness, scenario)
        shares.append(result)
        per = result.get("gets_per_wait_per_interval")
        gets = f"{per:.2f} GETs per wait per interval" if per is not None else "-"
        if scenario.rate_limit is None:
            case = f"{scenario.n} waits on {scenario.distinct} batches, every {scenario.interval:g} s"
            ideal = scenario.distinct / scenario.n
            harness.table.add(
                "2",
                case,
                scenario.subject,
                f"{gets}; {_rate(result)} GETs/s; {result['connections_open_at_end']} TCP conns",
                f"{ideal:.2f} (1 GET per batch per interval)" if ideal < 1 else "",
                "-"
                if ideal >= 1 or per is None
                else ("yes" if per <= ideal * 1.5 else f"NO ({per / ideal:.1f}x)"),
            )
        else:
            ended = sum(result["events"].values())
            offered = scenario.n / scenario.interval
            harness.table.add(
                "2",
                f"{scenario.n:,} waits every {scenario.interval:g} s (~{offered:.0f}/s) "
                f"vs a {scenario.rate_limit:g}/s account limit",
                scenario.subject,
                f"{result['status_429']} x 429 of {result['gets_total']} requests; "
                f"{_rate(result)} req/s; each wait polled every {_every(result)}; {ended} waits ended early",
                "0 x 429",
                "yes" if result["status_429"] == 0 else "NO",
            )
    harness.results["api_calls"] = {"list_vs_gets": lists, "sharing_and_limits": shares}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    emit(asyncio.run(_list_vs_gets(args.url, args.repeats)))


if __name__ == "__main__":
    main()
