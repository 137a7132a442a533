"""Item 25: a 500 MB output (200,000 answers) landed by ``BatchResultsOperator`` as JSONL and as Parquet,
beside a plain streamed ``json.loads`` pass over the same file (the floor any landing pays to read it),
each in a fresh process; reported: the speed of each and their ratios, the peak RSS over the baseline
taken just before the landing (after the imports, and for Parquet one small table written), and the
size of what landed:

    python -m benchmarks.results_table --subject parquet --output OUT --input IN --dest PATH

The landing is the operator's own (``BatchResultsOperator._write`` over ``client.results.merge`` of the
output file and the input file, as ``TogetherHook.iter_results`` gives them once downloaded): the
download itself is item 4's. The input file (short lines) is read too, as a landing does, to find the
requests missing from the output. Rounds run the three subjects in a seeded random order; ratios are
taken per round and the median reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from pathlib import Path
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
)

if TYPE_CHECKING:
    from benchmarks.harness import Harness

ROWS = 200_000
LINE_BYTES = 2_500  # 200,000 x 2,500 = 500,000,000 bytes of output
MISSING_EVERY = 200  # one request in 200 is in the input only: landed as missing
JSON_EVERY = 10  # one answer in 10 is a JSON object (structured output): content_json parses it
ROUNDS = 3
SUBJECTS = ("json", "jsonl", "parquet")
RSS_TARGET = 200 * (1 << 20)
_WORDS = ("the", "batch", "answer", "model", "data", "review", "summary", "table", "row", "token")


def _answer(index: int) -> dict[str, Any]:
    prompt = 120 + index % 50
    return {
        "custom_id": f"request-{index:06d}",
        "response": {
            "status_code": 200,
            "request_id": f"req-{index:012d}",
            "body": {
                "id": f"cmpl-{index:012d}",
                "object": "chat.completion",
                "created": 1_767_225_600,
                "model": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": prompt, "completion_tokens": 600, "total_tokens": prompt + 600},
            },
        },
    }


def generate(output: Path, input_path: Path, rows: int) -> None:
    """The output file (lines of exactly ``LINE_BYTES``) and the batch's input (short lines, one more
    request every ``MISSING_EVERY`` that the output never answers)."""
    rng = random.Random(25)
    # Answers are slices of one long text of words at random places: words drawn per answer would take
    # minutes for 500 MB.
    pool = " ".join(rng.choice(_WORDS) for _ in range(400_000))
    prefix, suffix = '{"label": "positive", "reason": "', '"}'
    escapes = len(json.dumps(prefix + suffix)) - 2 - len(prefix + suffix)
    body = {"model": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "messages": [{"role": "user"}]}
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as out, open(input_path, "wb") as asked:
        for index in range(rows):
            record = _answer(index)
            budget = LINE_BYTES - len(json.dumps(record).encode()) - 1
            structured = index % JSON_EVERY == 0
            room = budget - (len(prefix) + len(suffix) + escapes if structured else 0)
            start = rng.randrange(len(pool) - room)
            words = pool[start : start + room]
            content = prefix + words + suffix if structured else words
            record["response"]["body"]["choices"][0]["message"]["content"] = content
            line = json.dumps(record).encode() + b"\n"
            assert len(line) == LINE_BYTES, len(line)
            out.write(line)
            asked.write(json.dumps({"custom_id": record["custom_id"], "body": body}).encode() + b"\n")
            if index % MISSING_EVERY == 0:
                gone = {"custom_id": f"missing-{index:06d}", "body": body}
                asked.write(json.dumps(gone).encode() + b"\n")


def _land(subject: str, output: str, input_path: str, dest: str) -> dict[str, Any]:
    from together_provider.client import results
    from together_provider.client.repair import tagged
    from together_provider.client.table import PARQUET
    from together_provider.operators.results import BatchResultsOperator

    def landing() -> tuple[int, int]:
        if subject == "json":
            rows = 0
            with open(output, "rb") as lines:
                for line in lines:
                    json.loads(line)
                    rows += 1
            return rows, 0
        operator = BatchResultsOperator(task_id="r", batch_id="b", result_path=dest, result_format=subject)
        tally = results.Tally()
        with open(output, "rb") as answered, open(input_path, "rb") as asked:
            records = results.merge([("output", answered)], ("input", asked))
            # As the operator does: a table names each row's round and batch.
            operator._write(tagged(records, 0, "b") if subject == PARQUET else records, tally, None)
        return tally.counts["total"], Path(dest).stat().st_size

    if subject == "parquet":
        # Warm: pyarrow's import and its first writer, not charged to the landing.
        from together_provider.tasks.parquet import ParquetRowWriter

        with open(dest + ".warm", "wb") as sink:
            ParquetRowWriter(sink).close()
        Path(dest + ".warm").unlink()
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    rows, size = landing()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "rows": rows,
        "bytes": size,
        "rss_base": base,
        "rss_peak": peak_rss_bytes(),
    }


def suite(harness: Harness) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        harness.table.add(
            "25", "500 MB output as a table", "BatchResultsOperator", "skipped: pyarrow not installed"
        )
        return
    rows = ROWS if not harness.quick else 20_000
    folder = harness.out / "results_table"
    output, input_path = folder / f"output-{rows}.jsonl", folder / f"input-{rows}.jsonl"
    if not output.exists() or output.stat().st_size != rows * LINE_BYTES:
        print(f"  results_table: generating {rows:,} answers", flush=True)
        generate(output, input_path, rows)
    env = bench_env(harness.out)
    rounds = ROUNDS if not harness.quick else 1
    order = random.Random(2025)
    runs: dict[str, list[dict[str, Any]]] = {subject: [] for subject in SUBJECTS}
    try:
        for number in range(rounds):
            subjects = list(SUBJECTS)
            order.shuffle(subjects)
            for subject in subjects:
                print(f"  results_table: round {number + 1} of {rounds}, {subject}", flush=True)
                dest = folder / f"landed.{subject}"
                runs[subject].append(
                    run_measurement(
                        [
                            *(sys.executable, "-m", "benchmarks.results_table", "--subject", subject),
                            *("--output", str(output), "--input", str(input_path), "--dest", str(dest)),
                        ],
                        env=env,
                        log=harness.out / "logs" / f"results-table-{subject}-{number}.log",
                    )
                )
                dest.unlink(missing_ok=True)
    finally:
        for leftover in folder.glob("landed.*"):
            leftover.unlink()
    size = output.stat().st_size
    expected = rows + -(-rows // MISSING_EVERY)

    def speed(run: dict[str, Any]) -> float:
        return size / 1e6 / run["seconds"]

    def ratio(a: str, b: str) -> list[float]:
        return [x["seconds"] / y["seconds"] for x, y in zip(runs[a], runs[b], strict=True)]

    summary: dict[str, Any] = {"bytes": size, "rows": rows, "rounds": rounds}
    for subject in SUBJECTS:
        got = runs[subject]
        summary[subject] = {
            "seconds": [r["seconds"] for r in got],
            "cpu_s": [r["cpu_s"] for r in got],
            "rss_over_base": [r["rss_peak"] - r["rss_base"] for r in got],
            "rss_base": [r["rss_base"] for r in got],
            "rows": [r["rows"] for r in got],
            "landed_bytes": [r["bytes"] for r in got],
        }
    for a, b in (("parquet", "json"), ("jsonl", "json"), ("parquet", "jsonl")):
        summary[f"time_{a}_over_{b}"] = ratio(a, b)
    harness.results["results_table"] = summary
    for subject, label in (
        ("json", "plain streamed json.loads of every line (the floor)"),
        ("jsonl", "BatchResultsOperator landing, result_format='jsonl'"),
        ("parquet", "BatchResultsOperator landing, result_format='parquet'"),
    ):
        got = runs[subject]
        over = [r["rss_peak"] - r["rss_base"] for r in got]
        seconds = [r["seconds"] for r in got]
        text = (
            f"{median(seconds) or 0:.1f} s ({median([speed(r) for r in got]) or 0:.0f} MB/s; "
            f"runs {spread(seconds)}); peak RSS +{fmt_bytes(max(over))} over {fmt_bytes(got[0]['rss_base'])}"
        )
        if subject != "json":
            text += f"; {got[0]['rows']:,} rows, {fmt_bytes(got[0]['bytes'])} landed"
            text += f"; time x{median(ratio(subject, 'json')) or 0:.2f} the json pass"
        if subject == "parquet":
            text += f", x{median(ratio('parquet', 'jsonl')) or 0:.2f} the JSONL landing"
        right = subject == "json" or all(r["rows"] == expected for r in got)
        harness.table.add(
            "25",
            f"{size / 1e6:.0f} MB output, {rows:,} answers, {rounds} rounds",
            label,
            text + ("" if right else "; ROW COUNT WRONG"),
            "" if subject != "parquet" else "< 200 MB over baseline",
            "" if subject != "parquet" else ("yes" if max(over) < RSS_TARGET and right else "NO"),
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subject", choices=SUBJECTS, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--dest", required=True)
    args = parser.parse_args()
    emit(_land(args.subject, args.output, args.input, args.dest))


if __name__ == "__main__":
    main()
