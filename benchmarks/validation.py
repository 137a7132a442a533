"""Input validation: MB/s of ``together_provider.client.jsonl.validate_input_file`` on a generated 100 MB,
50,000-line batch input, against the official ``together`` SDK's own pre-upload check
(``together.lib.utils.files.check_file``, what ``client.files.upload(check=True)`` runs) on the same file.

The two are not the same work: the SDK decodes UTF-8 in one pass, then parses each line and checks it is
a JSON object; the provider's validator does one pass that parses each line and checks every Batch API
rule (custom_id present, unique, at most 64 characters; body and body.model; messages for chat; line and
size limits) and computes the SHA-256 the upload sends. Runs alternate, in one fresh process, after one
warm-up of each (page cache, imports), and the median of the runs is reported:

    python -m benchmarks.validation --file out/bench/validation/input.jsonl --repeats 5
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import bench_env, emit, median, run_measurement, spread

if TYPE_CHECKING:
    from benchmarks.harness import Harness

LINES = 50_000
LINE_BYTES = 2_000  # 50,000 x 2,000 = 100,000,000 bytes, under the API's 104,857,600
TARGET = 2.0
_WORDS = [
    "the",
    "of",
    "batch",
    "model",
    "answer",
    "question",
    "summarize",
    "translate",
    "explain",
    "review",
    "data",
    "test",
]
_UTF8_PREFIX = "Résumé, naïve café, Grüße: "


def generate(path: Path, lines: int = LINES, line_bytes: int = LINE_BYTES) -> int:
    """A chat-completions batch input with lines of exactly ``line_bytes`` bytes, some of it non-ASCII."""
    rng = random.Random(6)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        for index in range(lines):
            record: dict[str, Any] = {
                "custom_id": f"request-{index:06d}",
                "body": {
                    "model": "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                    "max_tokens": 256,
                    "temperature": 0.2,
                    "messages": [
                        {"role": "system", "content": "You are a careful assistant."},
                        {"role": "user", "content": ""},
                    ],
                },
            }
            budget = line_bytes - len(json.dumps(record, ensure_ascii=False).encode()) - 1
            filler: list[str] = []
            while len(" ".join(filler)) < budget:
                filler.append(rng.choice(_WORDS))
            # Non-ASCII first, the ASCII filler cut to size last, so the cut never splits a character.
            content = (_UTF8_PREFIX + " ".join(filler)).encode()[:budget].decode()
            record["body"]["messages"][1]["content"] = content
            out.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    return path.stat().st_size


def _ours(path: Path) -> int:
    from together_provider.client.jsonl import validate_input_file

    return validate_input_file(path, endpoint="/v1/chat/completions").lines


def _sdk(path: Path) -> int:
    from together.lib.utils.files import check_file

    report = check_file(path, purpose="batch-api")
    if not report["is_check_passed"]:
        raise RuntimeError(f"the SDK rejected the file: {report['message']}")
    return int(report["num_samples"])


def _measure(path: Path, repeats: int) -> dict[str, Any]:
    size = path.stat().st_size
    runs: dict[str, list[float]] = {"provider": [], "sdk": []}
    checks = {"provider": _ours, "sdk": _sdk}
    lines = {name: check(path) for name, check in checks.items()}  # warm-up, and both must pass
    for _ in range(repeats):
        for name, check in checks.items():
            started = time.perf_counter()
            check(path)
            runs[name].append(size / (time.perf_counter() - started) / 1e6)
    return {"bytes": size, "lines": lines, "mb_s": runs}


def suite(harness: Harness) -> None:
    path = harness.out / "validation" / "input-100MB.jsonl"
    lines = LINES if not harness.quick else 5_000
    if not path.exists() or path.stat().st_size != lines * LINE_BYTES:
        print(f"  validation: generating {lines:,} lines", flush=True)
        generate(path, lines)
    repeats = 5 if not harness.quick else 2
    result = run_measurement(
        [sys.executable, "-m", "benchmarks.validation", "--file", str(path), "--repeats", str(repeats)],
        env=bench_env(harness.out),
        log=harness.out / "logs" / "validation.log",
    )
    ours, sdk = result["mb_s"]["provider"], result["mb_s"]["sdk"]
    ratios = [a / b for a, b in zip(ours, sdk, strict=True)]
    ratio = median(ratios) or 0.0
    result["ratio_median"] = ratio
    harness.results["validation"] = result
    harness.table.add(
        "5",
        f"{result['bytes'] / 1e6:.0f} MB, {result['lines']['provider']:,} lines, {repeats} runs each",
        "validate_input_file vs together SDK check_file",
        f"{median(ours):.0f} vs {median(sdk):.0f} MB/s, ratio {ratio:.2f} (runs {spread(ratios)}); "
        "provider also checks custom_id/body/model/messages/limits and hashes SHA-256",
        f">= {TARGET:g}x the SDK",
        "yes" if ratio >= TARGET else "NO",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    emit(_measure(args.file, args.repeats))


if __name__ == "__main__":
    main()
