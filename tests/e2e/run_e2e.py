"""Start the e2e stack, run every scenario, print the summary table, tear everything down.

    python -m tests.e2e.run_e2e [--out out/e2e] [--keep]

Exits 1 when any scenario saw something other than what it expected. Not a pytest module on purpose:
``make test`` must not start a whole Airflow deployment. Logs are kept under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import traceback
from pathlib import Path

from tests.e2e.airflow_env import ROOT
from tests.e2e.scenarios import DAG_IDS, SCENARIOS, Result
from tests.e2e.stack import TEST_API_KEY, Stack, logs_holding


def _terminate(signum: int, _frame: object) -> None:
    # Turn SIGTERM (CI's timeout, a user's kill) into an exception, so teardown still runs.
    raise SystemExit(128 + signum)


def print_table(results: list[Result]) -> None:
    header = ("scenario", "expected", "seen", "time", "result")
    rows = [
        (r.scenario, r.expected, r.seen, f"{r.seconds:.0f} s", "ok" if r.ok else "MISMATCH") for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * width for width in widths), *rows]:
        print("| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |")


def run(stack: Stack, only: set[str]) -> list[Result]:
    started = time.monotonic()
    try:
        stack.start()
        stack.wait_dags(DAG_IDS)
    except Exception as exc:
        traceback.print_exc()
        return [Result("stack starts", "all healthy, DAGs parsed", str(exc).splitlines()[0][:150], False, 0)]
    results = [
        Result(
            "stack starts",
            "all healthy, DAGs parsed",
            "Postgres, Redis, emulator, S3 (moto), api-server, scheduler, dag-processor, "
            "2 workers (own temp dirs), 2 triggerers",
            True,
            time.monotonic() - started,
        )
    ]
    for scenario in SCENARIOS:
        if only and scenario.__name__ not in only:
            continue
        begun = time.monotonic()
        print(f"== {time.strftime('%H:%M:%S')} {scenario.__name__}", flush=True)
        try:
            found = scenario(stack)
        except Exception as exc:
            traceback.print_exc()
            found = [Result(scenario.__name__, "no error", repr(exc)[:200], False, time.monotonic() - begun)]
        for result in found:
            print(f"   {'ok' if result.ok else 'MISMATCH'}: {result.scenario}: {result.seen}", flush=True)
        results += found
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "e2e", help="where logs are kept")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        choices=[scenario.__name__ for scenario in SCENARIOS],
        help="run just this scenario (repeatable); the default is all",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    stack = Stack()
    print(f"== e2e stack in {stack.work}", flush=True)
    results: list[Result] = []
    finished = False
    try:
        results = run(stack, set(args.only))
        finished = True
    finally:
        # A second SIGTERM must not cut the teardown short and leak the stack's processes.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            requests_log = stack.emulator.requests_log()
            (stack.log_dir / "emulator-requests.json").write_text(json.dumps(requests_log, indent=1))
        except Exception:
            pass  # the emulator may never have started; its absence is already a failed row
        stack.stop()
        out = stack.collect(args.out)
        if not args.keep:
            stack.remove()
        if not finished:
            print(f"== interrupted: everything stopped, logs in {out}", flush=True)
    leaked = logs_holding(out, TEST_API_KEY)
    results.append(
        Result(
            "API key kept out of logs",
            "no kept log holds the test key",
            f"{len(leaked)} files hold it" + (f": {', '.join(str(p) for p in leaked[:3])}" if leaked else ""),
            not leaked,
            0,
        )
    )
    print()
    print_table(results)
    failed = sum(not r.ok for r in results)
    print(f"\nLogs: {out}  Wall time: {time.monotonic() - started:.0f} s")
    print(f"e2e: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
