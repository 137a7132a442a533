"""Item 18: the wheel's extras installed into an Airflow that is already there (issue 23).

The wheel is built from this tree. A base virtualenv holds Airflow and the provider without extras, at
``.venv``'s versions (``.venv``'s ``pip freeze`` as constraints), built once and kept in
``out/bench/install/`` while those versions stay. Each case copies the base and times one
``pip install`` of the wheel with an extra, as a user would run it: no constraints, ``--no-cache-dir``
(every case downloads alike, whichever ran first). Reported per case: the wall time, whether pip said
it was backtracking (its "looking at multiple versions of X" notices, and on which packages), and the
versions it settled on. The reference case builds the wheel again with the ``[s3]`` extra as it was
before issue 23 (``apache-airflow-providers-amazon[s3fs]``, no floors) and runs the issue's command
with it; it is stopped after ``REFERENCE_TIMEOUT`` seconds.

Nothing is asserted about time; "met?" says whether the S3 cases installed what ``[s3]`` is for (an
amazon provider at or above the floor with s3fs). Everything is removed at the end but the base.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.common import ROOT, machine_load

if TYPE_CHECKING:
    from benchmarks.harness import Harness

ITEM = "18"
# (case, pip arguments after the wheel's path and its extras)
CASES = (
    ("[s3]", "s3", ()),
    ("[openlineage]", "openlineage", ()),
    ("[common-ai]", "common-ai", ()),
    ('[s3] + "moto[server]" in one command', "s3", ("moto[server]",)),
)
REFERENCE_TIMEOUT = 900.0
# What the S3 cases must end with: the amazon provider at or above the extra's floor, and s3fs.
AMAZON_FLOOR = (9, 8, 0)
SHOWN = (
    "apache-airflow-providers-amazon",
    "s3fs",
    "aiobotocore",
    "boto3",
    "apache-airflow-providers-openlineage",
    "apache-airflow-providers-common-ai",
    "moto",
)
_LOOKING = re.compile(r"pip is looking at multiple versions of (\S+)")


def _run(argv: list[str], log: Path, timeout: float = 900.0) -> tuple[int | None, float]:
    """Run ``argv`` with its output in ``log``; (exit status or None if stopped, seconds)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            code = None
    return code, time.monotonic() - started


def _build_wheel(source: Path, dist: Path, log: Path) -> Path:
    shutil.rmtree(dist, ignore_errors=True)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist)]
    code, _ = _run([*argv, str(source)], log)
    wheels = sorted(dist.glob("*.whl"))
    if code != 0 or not wheels:
        raise RuntimeError(f"building the wheel from {source} failed: see {log}")
    return wheels[0]


def _unfloored_source(into: Path) -> Path:
    """This tree's packaging with the [s3] extra as it was before issue 23, for the reference case."""
    for name in ("provider", "setup.cfg", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
        else:
            shutil.copy2(source, into / name)
    setup = into / "setup.cfg"
    text = setup.read_text()
    start, end = text.index("\ns3 =\n"), text.index("\ndocs =\n")
    setup.write_text(text[:start] + "\ns3 =\n    apache-airflow-providers-amazon[s3fs]" + text[end:])
    return into


def _base(harness: Harness, wheel: Path) -> tuple[Path, float]:
    """A venv with Airflow and the provider (no extras) at .venv's versions; (its path, seconds to
    build it, 0 when reused)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True
    ).stdout
    # Only what decides the base: the pins, not this run's wheel (the provider is reinstalled each case).
    pins = "\n".join(line for line in frozen.splitlines() if not line.startswith("airflow-provider-together"))
    key = hashlib.sha256((sys.version + pins).encode()).hexdigest()[:12]
    root = harness.out / "install"
    base = root / f"base-{key}"
    if (base / ".complete").exists():
        return base, 0.0
    for stale in root.glob("base-*"):
        shutil.rmtree(stale, ignore_errors=True)
    constraints = root / f"constraints-{key}.txt"
    constraints.parent.mkdir(parents=True, exist_ok=True)
    constraints.write_text(pins + "\n")
    started = time.monotonic()
    log = harness.out / "logs" / "install-base.log"
    for argv in (
        [sys.executable, "-m", "venv", str(base)],
        [str(base / "bin" / "python"), "-m", "pip", "install", "--quiet", "-c", str(constraints), str(wheel)],
    ):
        code, _ = _run(argv, log)
        if code != 0:
            raise RuntimeError(f"building the base venv failed: see {log}")
    (base / ".complete").write_text("")
    return base, time.monotonic() - started


def _versions(python: Path) -> dict[str, str]:
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
    ).stdout
    found = {}
    for line in listed.splitlines():
        name, _, version = line.partition("==")
        if name.lower() in SHOWN:
            found[name.lower()] = version
    return found


def _case(
    base: Path, wheel: Path, extra: str, more: tuple[str, ...], log: Path, timeout: float
) -> dict[str, Any]:
    """Copy the base, install the wheel with ``extra`` (and ``more``) into the copy, and say how it went."""
    with tempfile.TemporaryDirectory(prefix="bench-install-") as tmp:
        venv = Path(tmp) / "venv"
        # A venv runs from a copy when its python is called by path (`python -m pip`): pyvenv.cfg names
        # the interpreter, not the directory.
        shutil.copytree(base, venv, symlinks=True)
        python = venv / "bin" / "python"
        load = machine_load()
        argv = [str(python), "-m", "pip", "install", "--no-cache-dir", f"{wheel}[{extra}]", *more]
        code, seconds = _run(argv, log, timeout=timeout)
        text = log.read_text(errors="replace")
        versions = _versions(python) if code == 0 else {}
    return {
        "exit": code,
        "seconds": round(seconds, 1),
        "load": load,
        "backtracked_on": sorted(set(_LOOKING.findall(text))),
        "taking_longer_notices": text.count("This is taking longer than usual"),
        "versions": versions,
        "missing_extra": "does not provide the extra" in text,
    }


def _s3_ok(result: dict[str, Any]) -> bool:
    amazon = result["versions"].get("apache-airflow-providers-amazon", "0")
    numbers = tuple(int(part) for part in re.findall(r"\d+", amazon)[:3])
    return numbers >= AMAZON_FLOOR and "s3fs" in result["versions"] and not result["missing_extra"]


def _describe(result: dict[str, Any]) -> str:
    if result["exit"] is None:
        head = f"stopped after {result['seconds']:.0f} s, still resolving"
    elif result["exit"] != 0:
        head = f"pip exited {result['exit']} after {result['seconds']:.0f} s"
    else:
        head = f"{result['seconds']:.1f} s"
    if result["backtracked_on"]:
        head += f"; backtracked on {', '.join(result['backtracked_on'])}"
        notices = result["taking_longer_notices"]
        head += f" ({notices} 'taking longer' notice{'' if notices == 1 else 's'})"
    else:
        head += "; no backtracking"
    shown = ", ".join(
        f"{name.replace('apache-airflow-providers-', '')} {v}" for name, v in result["versions"].items()
    )
    return f"{head}; {shown or 'nothing installed'}; {result['load']}"


def suite(harness: Harness) -> None:
    root = harness.out / "install"
    logs = harness.out / "logs"
    wheel = _build_wheel(ROOT, root / "dist", logs / "install-wheel.log")
    base, base_seconds = _base(harness, wheel)
    airflow = importlib.metadata.version("apache-airflow")
    results: dict[str, Any] = {"airflow": airflow, "base_seconds": round(base_seconds, 1), "cases": {}}
    cases = CASES if not harness.quick else CASES[:1]
    for case, extra, more in cases:
        print(f"  install: {case}", flush=True)
        slug = re.sub(r"[^a-z0-9]+", "-", case.lower()).strip("-")
        result = _case(base, wheel, extra, more, logs / f"install-{slug}.log", timeout=900.0)
        results["cases"][case] = result
        s3 = extra == "s3"
        harness.table.add(
            ITEM,
            f"{case} into Airflow {airflow}",
            "pip install <the wheel>" + (f" {' '.join(more)}" if more else ""),
            _describe(result),
            "amazon >= 9.8 with s3fs" if s3 else "",
            ("yes" if _s3_ok(result) else "NO") if s3 else "-",
        )
    if not harness.quick:
        print("  install: the reference, [s3] without floors, with moto[server]", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-unfloored-") as tmp:
            old = _build_wheel(
                _unfloored_source(Path(tmp)), root / "dist-unfloored", logs / "install-wheel-old.log"
            )
            result = _case(
                base, old, "s3", ("moto[server]",), logs / "install-unfloored.log", REFERENCE_TIMEOUT
            )
        results["cases"]["reference: [s3] before issue 23 + moto[server]"] = result
        harness.table.add(
            ITEM,
            f'reference: [s3] as before issue 23 (no floors) + "moto[server]", Airflow {airflow}',
            "pip install <that wheel> moto[server]",
            _describe(result),
            "amazon >= 9.8 with s3fs",
            "yes" if _s3_ok(result) else "NO",
        )
        shutil.rmtree(root / "dist-unfloored", ignore_errors=True)
    harness.results["install"] = results
    if base_seconds:
        harness.notes.append(
            f"install: the base venv (Airflow {airflow}, .venv's pins) took {base_seconds:.0f} s"
        )
