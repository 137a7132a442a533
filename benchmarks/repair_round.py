"""Item 25: what a repair round costs before its batch is made: its input built out of a 500 MB batch input
(200,000 lines) on the emulator for 5% of the lines (every 20th custom id), by
``together_provider.tasks.repair.round_input`` as ``BatchResultsOperator(retry_failed_requests=N)`` runs
it (the input file downloaded from Together, streamed line by line, the wanted lines written to a local
file). Beside it, a plain ``TogetherHook.download_file`` of the same file: what the round adds to the
download it cannot avoid. Each in a fresh process; reported: time, and peak RSS over the baseline taken
just before (after the imports and one API call):

    python -m benchmarks.repair_round --upload PATH          # prints the file id
    python -m benchmarks.repair_round --file-id ID --subject round|download --lines N
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    bench_env,
    emit,
    fmt_bytes,
    median,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    run_measurement,
    spread,
    together_conn_env,
)

if TYPE_CHECKING:
    from benchmarks.harness import Harness

LINES = 200_000
LINE_BYTES = 2_500  # 200,000 x 2,500 = 500,000,000 bytes
EVERY = 20  # 5% of the requests are sent again
ROUNDS = 3
RSS_TARGET = 50 * (1 << 20)


def _measure(file_id: str, subject: str, lines: int) -> dict[str, Any]:
    from together_provider.hooks.together import TogetherHook
    from together_provider.tasks import repair

    hook = TogetherHook()
    hook.get_file(file_id)  # warm: connection lookup, session, lazy imports
    # The ids a round sends again are known before it starts (from the landed rows): not charged.
    wanted = {f"request-{index:06d}" for index in range(0, lines, EVERY)}
    asked = len(wanted)
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory(prefix="repair-bench-") as folder:
        if subject == "round":
            batch = SimpleNamespace(input_file_id=file_id)
            path, count = repair.round_input(hook, [batch], wanted, folder, logging.getLogger("bench"))
        else:
            path, count = hook.download_file(file_id, Path(folder) / "input.jsonl"), 0
        size = Path(path).stat().st_size
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "asked": asked,
        "selected": count,
        "bytes": size,
        "rss_base": base,
        "rss_peak": peak_rss_bytes(),
    }


def suite(harness: Harness) -> None:
    from benchmarks.validation import generate

    lines = LINES if not harness.quick else 20_000
    source = harness.out / "repair_round" / f"input-{lines}.jsonl"
    if not source.exists() or source.stat().st_size != lines * LINE_BYTES:
        print(f"  repair_round: generating {lines:,} lines", flush=True)
        generate(source, lines, LINE_BYTES)
    env = bench_env(harness.out, **together_conn_env(harness.emulator.url))
    file_id = run_measurement(
        [sys.executable, "-m", "benchmarks.repair_round", "--upload", str(source)],
        env=env,
        log=harness.out / "logs" / "repair-round-upload.log",
    )["file_id"]
    rounds = ROUNDS if not harness.quick else 1
    runs: dict[str, list[dict[str, Any]]] = {"round": [], "download": []}
    try:
        for number in range(rounds):
            # Alternated, so a burst of load on the shared machine hits both alike.
            for subject in ("download", "round") if number % 2 else ("round", "download"):
                print(f"  repair_round: round {number + 1} of {rounds}, {subject}", flush=True)
                runs[subject].append(
                    run_measurement(
                        [
                            *(sys.executable, "-m", "benchmarks.repair_round", "--file-id", file_id),
                            *("--subject", subject, "--lines", str(lines)),
                        ],
                        env=env,
                        log=harness.out / "logs" / f"repair-round-{subject}-{number}.log",
                    )
                )
    finally:
        harness.control.delete_file(file_id)
    size = source.stat().st_size
    round_runs, download_runs = runs["round"], runs["download"]
    over = [r["rss_peak"] - r["rss_base"] for r in round_runs]
    seconds = [r["seconds"] for r in round_runs]
    plain = [r["seconds"] for r in download_runs]
    right = all(r["selected"] == r["asked"] for r in round_runs)
    harness.results["repair_round"] = {
        "bytes": size,
        "lines": lines,
        "selected": round_runs[0]["selected"],
        "round_seconds": seconds,
        "round_cpu_s": [r["cpu_s"] for r in round_runs],
        "round_rss_over_base": over,
        "download_seconds": plain,
        "download_rss_over_base": [r["rss_peak"] - r["rss_base"] for r in download_runs],
        "rss_base": [r["rss_base"] for r in round_runs],
    }
    added = (median(seconds) or 0) - (median(plain) or 0)
    harness.table.add(
        "25",
        f"{size / 1e6:.0f} MB input, {lines:,} lines, 5% sent again, {rounds} runs",
        "repair round input: tasks.repair.round_input (download + select), vs a plain download_file",
        f"{median(seconds) or 0:.1f} s (runs {spread(seconds)}; {round_runs[0]['selected']:,} lines, "
        f"{fmt_bytes(round_runs[0]['bytes'])}) vs download alone {median(plain) or 0:.1f} s (runs "
        f"{spread(plain)}): +{added:.1f} s to select; peak RSS +{fmt_bytes(max(over))} over "
        f"{fmt_bytes(round_runs[0]['rss_base'])}" + ("" if right else "; LINES MISSING"),
        "< 50 MB over baseline",
        "yes" if right and max(over) < RSS_TARGET else "NO",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--upload", help="upload this file to Together (the emulator) and print its id")
    parser.add_argument("--file-id")
    parser.add_argument("--subject", choices=("round", "download"))
    parser.add_argument("--lines", type=int)
    args = parser.parse_args()
    if args.upload:
        from together_provider.hooks.together import TogetherHook

        emit({"file_id": TogetherHook().upload_file(args.upload).id})
        return
    emit(_measure(args.file_id, args.subject, args.lines))


if __name__ == "__main__":
    main()
