"""Submit past the limits: a 120,000-line, 150 MB input (local) given to
``SubmitBatchOperator(split=True)`` at the default limits (50,000 requests, 100 MB per batch), uploaded
to the emulator; in a fresh process, reported: peak RSS over the baseline taken just before ``execute``
(after the imports and one warm call), the wall time, and that the parts are right: three, each under
both limits, their concatenation (downloaded back after the measurement) equal to the input:

    python -m benchmarks.split_submit --path out/bench/split/input-150MB.jsonl
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    bench_env,
    emit,
    fmt_bytes,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    run_measurement,
    together_conn_env,
)

if TYPE_CHECKING:
    from benchmarks.harness import Harness

LINES = 120_000
LINE_BYTES = 1_250  # 120,000 x 1,250 = 150,000,000 bytes: past 100 MB, so both limits are crossed
RSS_TARGET = 50 * (1 << 20)


class _TaskInstance:
    """What ``execute`` needs of a task instance outside a DAG run."""

    dag_id, run_id, task_id, map_index, try_number = "bench", "manual__split", "submit", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _submit(path: str) -> dict[str, Any]:
    from together_provider.client.split import MAX_BYTES_PER_BATCH, MAX_REQUESTS_PER_BATCH
    from together_provider.hooks.together import TogetherHook
    from together_provider.operators.batch import SubmitBatchOperator

    hook = TogetherHook()
    hook.list_files()  # warm: connection lookup, session, lazy imports
    operator = SubmitBatchOperator(task_id="submit", input_file_path=path, split=True)
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    batch_ids = operator.execute({"ti": _TaskInstance()})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    peak = peak_rss_bytes()
    # Checked after the measurement: each part downloaded back, counted and hashed in input order.
    digest = hashlib.sha256()
    parts = []
    with tempfile.TemporaryDirectory(prefix="split-bench-") as folder:
        for batch_id in batch_ids:
            file_id = hook.get_batch(batch_id).input_file_id
            local = Path(hook.download_file(file_id, Path(folder) / "part.jsonl"))
            lines = size = 0
            with open(local, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
                    lines += block.count(b"\n")
                    size += len(block)
            parts.append({"file_id": file_id, "lines": lines, "bytes": size})
            local.unlink()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rss_base": base,
        "rss_peak": peak,
        "parts": parts,
        "concatenation_sha256": digest.hexdigest(),
        "within_limits": all(
            p["lines"] <= MAX_REQUESTS_PER_BATCH and p["bytes"] <= MAX_BYTES_PER_BATCH for p in parts
        ),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def suite(harness: Harness) -> None:
    from benchmarks.validation import generate

    lines = LINES if not harness.quick else 12_000
    source = harness.out / "split" / f"input-{lines}.jsonl"
    if not source.exists() or source.stat().st_size != lines * LINE_BYTES:
        print(f"  split_submit: generating {lines:,} lines", flush=True)
        generate(source, lines, LINE_BYTES)
    env = bench_env(harness.out, **together_conn_env(harness.emulator.url))
    result = run_measurement(
        [sys.executable, "-m", "benchmarks.split_submit", "--path", str(source)],
        env=env,
        log=harness.out / "logs" / "split-submit.log",
    )
    for part in result["parts"]:
        harness.control.delete_file(part["file_id"])  # else a later run's uploads are deduplicated
    size = source.stat().st_size
    over = result["rss_peak"] - result["rss_base"]
    same = result["concatenation_sha256"] == _sha256(source)
    expected_parts = -(-lines // 50_000)
    right = same and result["within_limits"] and len(result["parts"]) == expected_parts
    harness.results["split_submit"] = {
        "bytes": size,
        "lines": lines,
        "seconds": result["seconds"],
        "cpu_s": result["cpu_s"],
        "rss_over_base": over,
        "rss_base": result["rss_base"],
        "parts": [{"lines": p["lines"], "bytes": p["bytes"]} for p in result["parts"]],
        "concatenation_equals_input": same,
        "within_limits": result["within_limits"],
    }
    layout = " + ".join(f"{p['lines']:,}" for p in result["parts"])
    harness.table.add(
        "16",
        f"{lines:,} lines, {size / 1e6:.0f} MB input, split=True at the default limits",
        "SubmitBatchOperator: one pass to validate and cut, each part uploaded from its byte range",
        f"{result['seconds']:.1f} s ({size / 1e6 / (result['seconds'] or 1):.0f} MB/s); peak RSS "
        f"+{fmt_bytes(over)} over {fmt_bytes(result['rss_base'])}; parts {layout} lines"
        + ("" if right else "; PARTS WRONG"),
        f"{expected_parts} parts under both limits, concatenation = input; < 50 MB over baseline",
        "yes" if right and over < RSS_TARGET else "NO",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", required=True)
    args = parser.parse_args()
    emit(_submit(args.path))


if __name__ == "__main__":
    main()
