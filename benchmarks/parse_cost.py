"""DAG-parse cost: what importing the provider's sensor and operators adds to a DAG file that already
imports ``airflow.sdk``, measured in fresh processes with ``python -X importtime``.

Each sample is one new interpreter: ``from airflow.sdk import DAG`` (the DAG file's own first line),
a marker on stderr, then the provider import. Everything importtime reports after the marker is the
provider's doing; the sum of its top-level ``cumulative`` column is the time, and ``sys.modules`` before
and after names the modules. The median of the samples is reported, configurations interleaved so a
burst of load on the shared machine hits them alike.

Bytecode is cached under out/bench/pycache (PYTHONPYCACHEPREFIX), as a dag-processor's would be in its
__pycache__: this environment sets PYTHONDONTWRITEBYTECODE, and compiling every module on each sample
would measure the compiler, not the import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import ROOT, bench_env, median, spread

if TYPE_CHECKING:
    from benchmarks.harness import Harness

MARK = "@@bench-provider-import@@"
SAMPLES = 15
TARGET_MS = 30.0
# Loaded at parse time, these are what the import must not add (the provider loads them on workers).
FORBIDDEN = ("requests", "aiohttp", "airflow.providers.http.hooks", "airflow.providers.http.operators")
WATCHED = (*FORBIDDEN, "urllib3", "httpx", "openai", "together_provider.hooks", "together_provider.client")

PROBE = """
import json, sys, time
from airflow.sdk import DAG  # the DAG file's own import
before = set(sys.modules)
sys.stderr.write("{mark}\\n")
sys.stderr.flush()
started = time.perf_counter()
{imports}
wall = time.perf_counter() - started
print(json.dumps({{"wall_s": wall, "new": sorted(set(sys.modules) - before), "all": sorted(sys.modules)}}))
"""

CONFIGS = {
    "together (.venv)": ("venv", "import together_provider.sensors.batch, together_provider.operators.batch"),
    "together (.venv-bench)": (
        "bench",
        "import together_provider.sensors.batch, together_provider.operators.batch",
    ),
    "openai provider operators (.venv-bench)": ("bench", "import airflow.providers.openai.operators.openai"),
}


def _importtime_us(stderr: str) -> tuple[int, list[tuple[str, int]]]:
    """Top-level cumulative microseconds after the marker, and every module after it with its own time."""
    lines = stderr.splitlines()
    try:
        start = lines.index(MARK) + 1
    except ValueError as exc:
        raise RuntimeError(f"no marker in the probe's stderr:\n{stderr[-2000:]}") from exc
    total = 0
    modules = []
    for line in lines[start:]:
        if not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].split(":")[1].strip().isdigit():
            continue
        own, cumulative, name = int(parts[0].split(":")[1]), int(parts[1]), parts[2]
        stripped = name[1:] if name.startswith(" ") else name
        modules.append((stripped.strip(), own))
        if not stripped.startswith(" "):
            total += cumulative
    return total, modules


def _packages(modules: list[str]) -> str:
    if not modules:
        return "no requests/aiohttp/http hook"
    counts: dict[str, int] = {}
    for module in modules:
        top = next(prefix for prefix in FORBIDDEN if module.startswith(prefix))
        counts[top] = counts.get(top, 0) + 1
    return ", ".join(f"{top} ({count} modules)" for top, count in counts.items())


def _sample(python: str, imports: str, env: dict[str, str]) -> dict[str, Any]:
    code = PROBE.format(mark=MARK, imports=imports)
    done = subprocess.run(
        [python, "-X", "importtime", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    if done.returncode != 0:
        raise RuntimeError(f"import probe failed ({python}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["importtime_us"], result["modules"] = _importtime_us(done.stderr)
    return result


def _env(harness: Harness, which: str) -> dict[str, str]:
    env = bench_env(harness.out, PYTHONPYCACHEPREFIX=str(harness.out / "pycache" / which))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if which == "bench":
        # The provider is not installed in the bench venv; the source tree is what .venv has (editable).
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "provider"), env["PYTHONPATH"]])
    return env


def suite(harness: Harness) -> None:
    pythons = {"venv": sys.executable, "bench": str(harness.bench_python) if harness.bench_python else None}
    configs = {name: spec for name, spec in CONFIGS.items() if pythons[spec[0]] is not None}
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    count = SAMPLES if not harness.quick else 5
    print(f"  parse: {len(configs)} configurations x {count} fresh processes (+1 to fill the bytecode cache)")
    for round_ in range(count + 1):
        for name, (which, imports) in configs.items():
            python = pythons[which]
            assert python is not None
            result = _sample(python, imports, _env(harness, which))
            if round_ > 0:
                samples[name].append(result)
    report = {}
    for name, results in samples.items():
        times_ms = [r["importtime_us"] / 1000 for r in results]
        walls_ms = [r["wall_s"] * 1000 for r in results]
        last = results[-1]
        new = last["new"]
        own = sorted(last["modules"], key=lambda item: -item[1])
        added_forbidden = sorted(m for m in new if m.startswith(FORBIDDEN))
        loaded_watched = sorted({w for w in WATCHED for m in last["all"] if m == w or m.startswith(w + ".")})
        report[name] = {
            "importtime_ms_median": median(times_ms),
            "importtime_ms_all": times_ms,
            "wall_ms_median": median(walls_ms),
            "modules_added": len(new),
            "module_names": new,
            "heaviest_self_us": own[:10],
            "forbidden_added": added_forbidden,
            "watched_loaded_anyway": loaded_watched,
        }
        is_ours = name.startswith("together")
        ms = median(times_ms) or 0.0
        ok = ms < TARGET_MS and not added_forbidden
        harness.table.add(
            "3",
            "import sensors.batch + operators.batch after airflow.sdk"
            if is_ours
            else "import its operators module",
            name,
            f"{ms:.1f} ms (runs {spread(times_ms)}); +{len(new)} modules; "
            f"heaviest {', '.join(m for m, _ in own[:2])}; adds {_packages(added_forbidden)}",
            f"< {TARGET_MS:g} ms, no requests/aiohttp/http" if is_ours else "",
            ("yes" if ok else "NO") if is_ours else "-",
        )
    ours, theirs = report.get("together (.venv-bench)"), report.get("openai provider operators (.venv-bench)")
    if ours and theirs and ours["importtime_ms_median"]:
        harness.notes.append(
            f"parse cost: the openai provider's operators take {theirs['importtime_ms_median']:.0f} ms, "
            f"{theirs['importtime_ms_median'] / ours['importtime_ms_median']:.0f}x this provider's "
            f"{ours['importtime_ms_median']:.1f} ms (same venv, same baseline)"
        )
    harness.results["parse_cost"] = report
    Path(harness.out / "parse_cost_modules.json").write_text(json.dumps(report, indent=2))
