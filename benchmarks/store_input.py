"""Submit from object storage: a 100 MB valid batch input in S3 (moto's server on loopback,
tests/s3_server.py), validated, hashed and uploaded to the emulator by ``SubmitBatchOperator``'s own path
(``execute`` with ``input_file_path="s3://conn@bucket/key"``: one streamed read to validate and hash, one
streamed read to upload, no local copy), in a fresh process per run; reported: peak RSS over the
baseline taken just before ``execute`` (after the imports, the connection lookups and one small read
through the same filesystem) and the wall time:

    python -m benchmarks.store_input --url s3://bench_s3@bucket/input.jsonl

The object lives in the moto process, so its bytes are not in the measured process's memory.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
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
    together_conn_env,
)

if TYPE_CHECKING:
    from benchmarks.harness import Harness

RSS_TARGET = 50 * (1 << 20)
REPEATS = 3
CONN = "bench_s3"
BUCKET = "bench-inputs"


class _TaskInstance:
    """What ``execute`` needs of a task instance outside a DAG run."""

    dag_id, run_id, task_id, map_index, try_number = "bench", "manual__1", "submit", -1, 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def _submit(url: str) -> dict[str, Any]:
    from together_provider.hooks.together import TogetherHook
    from together_provider.operators.batch import SubmitBatchOperator
    from together_provider.tasks import storage

    hook = TogetherHook()
    hook.list_files()  # warm: connection lookup, session, lazy imports
    # Warm the store side the same way: the connection, the filesystem, one read through it.
    warm = storage.input_file(url.rsplit("/", 1)[0] + "/warm.jsonl", field="input_file_path")
    storage.validate_input(warm, endpoint="/v1/chat/completions")
    operator = SubmitBatchOperator(task_id="submit", input_file_path=url)
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    batch_id = operator.execute({"ti": _TaskInstance()})
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    batch = hook.get_batch(batch_id)
    uploaded = hook.get_file(batch.input_file_id)
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "bytes": uploaded.bytes,
        "rss_base": base,
        "rss_peak": peak_rss_bytes(),
        "file_id": batch.input_file_id,
    }


def suite(harness: Harness) -> None:
    try:
        import airflow.providers.amazon  # noqa: F401
        import moto.server  # noqa: F401
        import s3fs  # noqa: F401
    except ImportError as exc:
        harness.table.add(
            "13", "100 MB input from S3", "SubmitBatchOperator", f"skipped: {exc.name} not installed"
        )
        return
    from tests.s3_server import S3Server

    from benchmarks.validation import LINE_BYTES, LINES, generate

    lines = LINES if not harness.quick else 5_000
    source = harness.out / "validation" / "input-100MB.jsonl"
    if not source.exists() or source.stat().st_size != lines * LINE_BYTES:
        print(f"  store_input: generating {lines:,} lines", flush=True)
        generate(source, lines)
    repeats = REPEATS if not harness.quick else 1
    runs: list[dict[str, Any]] = []
    with S3Server(log=harness.out / "logs" / "moto.log") as s3:
        s3.create_bucket(BUCKET)
        with open(source, "rb") as first:
            s3.put(BUCKET, "warm.jsonl", first.readline())
        s3.put(BUCKET, "input.jsonl", source)
        env = bench_env(harness.out, **together_conn_env(harness.emulator.url), **s3.connection_env(CONN))
        url = S3Server.url_for(CONN, BUCKET, "input.jsonl")
        for run in range(repeats):
            print(f"  store_input: run {run + 1} of {repeats}", flush=True)
            result = run_measurement(
                [sys.executable, "-m", "benchmarks.store_input", "--url", url],
                env=env,
                log=harness.out / "logs" / f"store-input-{run}.log",
            )
            runs.append(result)
            harness.control.delete_file(result["file_id"])
    size = source.stat().st_size
    over = [r["rss_peak"] - r["rss_base"] for r in runs]
    seconds = [r["seconds"] for r in runs]
    complete = all(r["bytes"] == size for r in runs)
    harness.results["store_input"] = {
        "bytes": size,
        "seconds": seconds,
        "cpu_s": [r["cpu_s"] for r in runs],
        "rss_over_base": over,
        "rss_base": [r["rss_base"] for r in runs],
        "all_complete": complete,
    }
    worst = max(over)
    harness.table.add(
        "13",
        f"{size / 1e6:.0f} MB input in S3 (moto, loopback), {repeats} runs",
        "SubmitBatchOperator: validate + hash, then upload, both streamed from the store",
        f"{median(seconds) or 0:.1f} s ({size / 1e6 / (median(seconds) or 1):.0f} MB/s of input); peak RSS "
        f"+{fmt_bytes(worst)} over {fmt_bytes(runs[0]['rss_base'])}"
        + ("" if complete else "; SIZE MISMATCH"),
        "< 50 MB over baseline",
        "yes" if worst < RSS_TARGET and complete else "NO",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    emit(_submit(args.url))


if __name__ == "__main__":
    main()
