"""`make bench`: every measurement of issue 6 in one run, one table, one JSON file.

    python -m benchmarks.run [--out out/bench] [--bench-python .venv-bench/bin/python]
                             [--only polling,validation,parse,download,store_input,split_submit,
                                     results_table,repair_round,api_calls,capacity,install,
                                     real_triggerer]
                             [--quick]

Runs with .venv's python (the provider as users install it); the openai comparisons run with
``--bench-python``, the only environment where apache-airflow-providers-openai is installed.
``--quick`` shortens every scenario for a smoke run; its figures are not the ones to quote.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import ROOT, machine_load
from benchmarks.harness import Harness

# Pure computation first, the long event-loop scenarios last; api_calls seeds the batches capacity uses.
SECTIONS = {
    "polling": "benchmarks.poll_policy",
    "validation": "benchmarks.validation",
    "parse": "benchmarks.parse_cost",
    "download": "benchmarks.download",
    "store_input": "benchmarks.store_input",
    "split_submit": "benchmarks.split_submit",
    # Issue 25: a 500 MB output landed as JSONL and as Parquet; a repair round's input from a 500 MB input.
    "results_table": "benchmarks.results_table",
    "repair_round": "benchmarks.repair_round",
    "api_calls": "benchmarks.api_calls",
    "capacity": "benchmarks.triggerer_capacity",
    # The wheel's extras installed into an existing Airflow (issue 23): minutes of pip and downloads.
    "install": "benchmarks.install",
    # The e2e stack's real triggerer (issue 17): minutes of a whole Airflow deployment.
    "real_triggerer": "benchmarks.real_triggerer",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench")
    parser.add_argument("--bench-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()] or list(SECTIONS)
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    harness = Harness(out, quick=args.quick, bench_python=args.bench_python)
    previous = out / "results.json"
    if args.only and previous.exists():
        # A subset run keeps the other sections' figures of the last run and replaces its own.
        harness.results.update(json.loads(previous.read_text()))
    started = time.monotonic()
    failed: list[str] = []
    environment = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_at_start": machine_load(),
        "quick": args.quick,
        "bench_python": str(harness.bench_python) if harness.bench_python else None,
    }
    try:
        for name in SECTIONS:
            if name not in only:
                continue
            print(f"== {time.strftime('%H:%M:%S')} {name} ({machine_load()})", flush=True)
            begun = time.monotonic()
            try:
                importlib.import_module(SECTIONS[name]).suite(harness)
            except Exception as exc:
                traceback.print_exc()
                failed.append(name)
                harness.table.add("-", name, "the benchmark itself", f"crashed: {type(exc).__name__}: {exc}")
            harness.results.setdefault("section_seconds", {})[name] = round(time.monotonic() - begun, 1)
    finally:
        harness.close()
    environment["load_at_end"] = machine_load()
    environment["wall_seconds"] = round(time.monotonic() - started, 1)
    harness.results["environment"] = environment
    harness.results["batch_creation"] = harness.creation
    harness.results["notes"] = harness.notes
    harness.results["table"] = harness.table.rows
    path = harness.write_json("results.json", harness.results)
    print()
    print(harness.table.render())
    print()
    for note in harness.notes:
        print(f"* {note}")
    print(f"\n{environment['wall_seconds']:.0f} s in all; {machine_load()}; JSON: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
