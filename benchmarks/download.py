"""Download: a 1 GiB output file streamed to disk by ``TogetherHook.download_file``, as a ratio of
``curl`` fetching the same file from the same emulator to the same disk, and the hook's peak RSS over its
baseline. The hook runs in a fresh process per sample so the RSS is the download's alone:

    python -m benchmarks.download --file-id ID --dest PATH

Each round runs curl, the hook and a bench-only reference (the hook's session read with ``readinto``) in a
seeded random order, after one warm-up fetch that puts the emulator's copy in the page cache; ratios are
taken per round and the median reported, so a burst of load on the shared machine hits all alike.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import (
    API_KEY,
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

SIZE = 1 << 30
REPEATS = 7
RATIO_TARGET = 0.9
RSS_TARGET = 100 * (1 << 20)


def _readinto(hook: Any, file_id: str, dest: Path) -> None:
    """Bench-only reference, not the provider: the hook's session and request, but read with http.client's
    ``readinto`` into one reused ``bytearray`` (not page-aligned, unlike the hook's buffer). Kept as the
    plain-Python baseline the hook's aligned buffer is compared with; see benchmarks/README.md."""
    settings = hook.settings
    url = settings.url_for(f"/v1/files/{file_id}/content")
    headers = {"Authorization": f"Bearer {settings.api_key}", "Accept-Encoding": "identity"}
    timeout = (settings.connect_timeout, settings.timeout)
    with (
        hook.get_conn().get(url, headers=headers, stream=True, timeout=timeout) as response,
        open(dest, "wb", buffering=0) as out,
    ):
        response.raise_for_status()
        buffer = memoryview(bytearray(1 << 20))
        while count := response.raw._fp.readinto(buffer):
            out.write(buffer[:count])


def _hook_download(file_id: str, dest: Path, method: str) -> dict[str, Any]:
    from together_provider.hooks.together import TogetherHook

    hook = TogetherHook()
    hook.get_file(file_id)  # warm: connection lookup, session, lazy imports
    gc.collect()
    base = rss_bytes()
    reset_peak_rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    if method == "hook":
        hook.download_file(file_id, dest)
    else:
        _readinto(hook, file_id, dest)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "bytes": dest.stat().st_size,
        "rss_base": base,
        "rss_peak": peak_rss_bytes(),
    }


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _curl(url: str, file_id: str, dest: Path) -> dict[str, Any]:
    cpu_started = _cpu_of_children()
    done = subprocess.run(
        [
            "curl", "-sS", "--fail", "-o", str(dest), "-H", f"Authorization: Bearer {API_KEY}",
            "-w", "%{size_download} %{time_total}", f"{url}/v1/files/{file_id}/content",
        ],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    size, seconds = done.stdout.split()
    return {"seconds": float(seconds), "cpu_s": _cpu_of_children() - cpu_started, "bytes": int(size)}


def suite(harness: Harness) -> None:
    if shutil.which("curl") is None:
        harness.table.add("4", "1 GiB download", "TogetherHook.download_file", "skipped: no curl on PATH")
        return
    size = SIZE if not harness.quick else 1 << 28
    repeats = REPEATS if not harness.quick else 2
    work = harness.out / "download"
    work.mkdir(parents=True, exist_ok=True)
    url = harness.emulator.url
    print(f"  download: writing a {fmt_bytes(size)} synthetic file in the emulator", flush=True)
    file_id = harness.control.synthetic_file(size)["id"]
    env = bench_env(harness.out, **together_conn_env(url))
    curl_runs, hook_runs, reference_runs = [], [], []
    try:
        _curl(url, file_id, work / "warm.jsonl")
        (work / "warm.jsonl").unlink()
        order = random.Random(6)
        for round_ in range(repeats):
            print(f"  download: round {round_ + 1} of {repeats}", flush=True)
            contenders = ["curl", "hook", "readinto"]
            # A different order each round (seeded): whatever runs right after another 1 GiB write is not
            # always the same contender.
            order.shuffle(contenders)
            for method in contenders:
                dest = work / f"{method}.jsonl"
                if method == "curl":
                    curl_runs.append(_curl(url, file_id, dest))
                else:
                    argv = [sys.executable, "-m", "benchmarks.download", "--file-id", file_id]
                    result = run_measurement(
                        [*argv, "--dest", str(dest), "--method", method],
                        env=env,
                        log=harness.out / "logs" / f"download-{method}-{round_}.log",
                    )
                    (hook_runs if method == "hook" else reference_runs).append(result)
                dest.unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        harness.control.delete_file(file_id)
    curl_mbs = [r["bytes"] / r["seconds"] / 1e6 for r in curl_runs]
    hook_mbs = [r["bytes"] / r["seconds"] / 1e6 for r in hook_runs]
    reference_mbs = [r["bytes"] / r["seconds"] / 1e6 for r in reference_runs]
    reference_ratios = [r / c for r, c in zip(reference_mbs, curl_mbs, strict=True)]
    # Per round, so a slow moment of the machine divides out instead of landing on one side.
    ratios = [h / c for h, c in zip(hook_mbs, curl_mbs, strict=True)]
    over = [r["rss_peak"] - r["rss_base"] for r in hook_runs]
    ratio = median(ratios) or 0.0
    # CPU seconds per GiB: steadier than wall time when other work shares the cores.
    cpu_ratio = median([c["cpu_s"] / h["cpu_s"] for h, c in zip(hook_runs, curl_runs, strict=True)]) or 0.0
    worst_over = max(over)
    complete = all(r["bytes"] == size for r in [*curl_runs, *hook_runs])
    harness.results["download"] = {
        "bytes": size,
        "curl_mb_s": curl_mbs,
        "hook_mb_s": hook_mbs,
        "ratio_per_round": ratios,
        "ratio_median": ratio,
        "curl_cpu_s": [r["cpu_s"] for r in curl_runs],
        "hook_cpu_s": [r["cpu_s"] for r in hook_runs],
        "cpu_ratio_curl_over_hook": cpu_ratio,
        "reference_readinto_mb_s": reference_mbs,
        "reference_ratio_median": median(reference_ratios),
        "reference_rss_over_base": [r["rss_peak"] - r["rss_base"] for r in reference_runs],
        "hook_rss_over_base": over,
        "hook_rss_base": [r["rss_base"] for r in hook_runs],
        "all_complete": complete,
    }
    harness.table.add(
        "4",
        f"{fmt_bytes(size)} file to disk, {repeats} rounds",
        "TogetherHook.download_file vs curl",
        f"{median(hook_mbs):.0f} vs {median(curl_mbs):.0f} MB/s, ratio {ratio:.2f} "
        f"(rounds {spread(ratios)}); CPU/GiB hook {median([r['cpu_s'] for r in hook_runs]) or 0:.2f} s, "
        f"curl {median([r['cpu_s'] for r in curl_runs]) or 0:.2f} s; "
        f"peak RSS +{fmt_bytes(worst_over)} over {fmt_bytes(hook_runs[0]['rss_base'])}"
        + ("" if complete else "; SIZE MISMATCH"),
        ">= 0.9x curl, < 100 MB over baseline",
        "yes" if ratio >= RATIO_TARGET and worst_over < RSS_TARGET and complete else "NO",
    )
    harness.table.add(
        "4",
        f"{fmt_bytes(size)} file to disk, {repeats} rounds",
        "bench reference: same session, readinto",
        f"{median(reference_mbs):.0f} MB/s, ratio {median(reference_ratios) or 0:.2f} to curl "
        f"(rounds {spread(reference_ratios)}): a plain readinto loop into a bytearray",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--file-id", required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--method", choices=("hook", "readinto"), default="hook")
    args = parser.parse_args()
    result = _hook_download(args.file_id, args.dest, args.method)
    os.remove(args.dest)
    emit(result)


if __name__ == "__main__":
    main()
