"""Run the test suite against several Airflow versions, each in its own virtualenv, and print a table.

    python3 tests/tooling/matrix/run.py              # the CI legs: Airflow 2.11 and 3.3
    python3 tests/tooling/matrix/run.py 2.11         # one leg
    python3 tests/tooling/matrix/run.py 3.3@3.12     # Airflow 3.3 on Python 3.12
    python3 tests/tooling/matrix/run.py --full       # every supported Airflow minor, plus the Python edges
    python3 tests/tooling/matrix/run.py 2.11 -- -k trigger   # extra pytest arguments after --
    python3 tests/tooling/matrix/run.py --compat     # 3.0, 3.1 and 3.2 on the version-sensitive tests (CI)

Each leg installs ``tests/tooling/matrix/requirements-<airflow minor>.txt`` (the exact Airflow release
and the provider versions pip needs pinned for it) plus this package with its test extras into
``.venv-matrix/airflow-<minor>-py<python>/``. A venv is rebuilt only when its inputs change, so a warm
run costs the tests alone. Standard library only: it runs before any venv exists. It lives beside the
tests, not among them: nothing here is collected by pytest.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
VENVS = ROOT / ".venv-matrix"
SUITES = ("unit", "integration", "dag.test", "conformance")
DEFAULT_PYTHON = "3.11"
# Cheap enough for every CI run: the oldest and the newest supported Airflow.
CI_LEGS = ("2.11", "3.3")
# Every supported minor on the default Python, and the newest Python on the oldest and newest Airflow:
# together they back the compatibility table (docs/compatibility.md). (3.11 is the floor: common-compat
# 1.21+ needs it.)
FULL_LEGS = ("2.11", "3.0", "3.1", "3.2", "3.3", "2.11@3.12", "3.3@3.12", "3.4")  # 3.4: a beta, not in CI
# The minors CI does not run whole: it runs them on COMPAT_TESTS, so every supported minor is exercised on
# every change (the whole legs are in --full).
COMPAT_LEGS = ("3.0", "3.1", "3.2")
# The tests of the code paths that differ between Airflow minors, cut to what CI can afford on three legs
# (a dag.test() run costs 5-50 s there): the compat layer and its fallbacks, object storage, triggers
# ending tasks, XComs (None on 3.0), the wheel's registration, and two Airflow runs: `airflow dags test`
# with a connection kept in the metadata DB, and a list wait whose merged results land on asset events
# (3.0's dag.test() activates no asset). Each provider or pin failure the whole legs have shown on one
# minor alone is among them; the whole legs run in --full.
_DB = "tests/integration/test_db_connection.py::"
COMPAT_TESTS = (
    "tests/unit/test_airflow_imports.py",
    "tests/unit/tasks/test_assets.py",
    "tests/unit/tasks/test_start_in_triggerer.py",
    "tests/integration/test_version_fallbacks.py",
    "tests/integration/test_trigger_kwargs_compat.py",
    "tests/integration/test_storage.py",
    "tests/integration/test_ending_trigger.py",
    "tests/integration/test_wheel.py",
    "tests/integration/test_trigger.py::test_missing_connection_ends_with_error",
    "tests/integration/test_trigger.py::test_run_never_blocks_the_loop",
    "tests/integration/test_results.py::test_result_path_as_a_file_url_or_local_object_storage_path",
    "tests/integration/test_list_wait.py::test_list_wait_and_merged_results_put_the_lists_on_their_asset_events",
    f"{_DB}test_airflow_dags_test_waits_with_a_connection_added_by_the_cli",
    f"{_DB}test_a_connection_defined_nowhere_is_not_looked_up_again_in_a_thread",
    f"{_DB}test_only_the_in_process_runners_comms_count_as_sync_only",
    # Before 3.2 the form comes from the hook, and only where flask_appbuilder is installed.
    "tests/integration/test_connection_form.py::test_the_providers_manager_sees_the_form",
    # A repair's state read back from XCom after a deferral, under each minor's dag.test().
    "tests/integration/test_repair.py::test_dag_test_repairs_deferred",
)
# Legs that also install an optional extra of this package: "<minor>-<name>" reads
# requirements-<minor>-<name>.txt and installs the package with these extras beside [test].
LEG_EXTRAS = {"3.3-ai": ("common-ai",)}
# The installed-package inputs of a venv: a change to any of them rebuilds it.
INSTALL_INPUTS = ("setup.cfg", "pyproject.toml")
# Each leg's tests run on this many processes (pytest-xdist), as make test's do: they wait on the emulator
# and on dag.test() far more than they use the CPU, so two keep 2 cores busier than one.
DEFAULT_WORKERS = 2
# The e2e suite drives a real Airflow deployment of the main venv's version, and the Docker config test
# checks that deployment's files against the main venv's Airflow: neither says anything about another.
PYTEST_ARGS = (
    "-q",
    "-p",
    "no:cacheprovider",
    "-p",
    "tests.tooling.matrix.suites",
    "-m",
    "not e2e",
    "--ignore=tests/e2e",
    "--ignore=tests/integration/test_docker_config.py",
)


@dataclass
class Leg:
    airflow: str
    python: str

    @classmethod
    def parse(cls, spec: str) -> Leg:
        airflow, _, python = spec.partition("@")
        return cls(airflow, python or DEFAULT_PYTHON)

    @property
    def name(self) -> str:
        return f"airflow-{self.airflow}-py{self.python}"

    @property
    def venv(self) -> Path:
        return VENVS / self.name

    @property
    def requirements(self) -> Path:
        return HERE / f"requirements-{self.airflow}.txt"

    @property
    def extras(self) -> str:
        return ",".join(("test", *LEG_EXTRAS.get(self.airflow, ())))


@dataclass
class Result:
    leg: Leg
    airflow_version: str = "?"
    python_version: str = "?"
    install_seconds: float = 0.0
    test_seconds: float = 0.0
    exitstatus: int | None = None
    suites: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exitstatus == 0


def find_python(version: str) -> str:
    """``pythonX.Y`` from PATH, or from pyenv's versions when its shim refuses a non-global version."""
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    for candidate in candidates:
        if candidate and _runs(candidate):
            return candidate
    raise RuntimeError(f"no working python{version} found (looked on PATH and in {pyenv_root}/versions)")


def _runs(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "pass"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _stamp(leg: Leg) -> str:
    digest = hashlib.sha256(leg.python.encode())
    for path in (leg.requirements, *(ROOT / name for name in INSTALL_INPUTS)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(leg: Leg) -> Iterator[None]:
    # Two runs on one machine (two engineers, or CI beside a developer) must not share a venv at once.
    VENVS.mkdir(exist_ok=True)
    with open(VENVS / f".{leg.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure_venv(leg: Leg, *, reinstall: bool = False) -> float:
    """Build the leg's venv unless an identical one exists. Returns the seconds spent installing."""
    if not leg.requirements.exists():
        missing = leg.requirements.relative_to(ROOT)
        raise RuntimeError(f"no pins for Airflow {leg.airflow}: {missing} is missing")
    stamp_file = leg.venv / ".matrix-stamp"
    wanted = _stamp(leg)
    python = leg.venv / "bin" / "python"
    if not reinstall and python.exists() and stamp_file.exists() and stamp_file.read_text() == wanted:
        return 0.0
    started = time.monotonic()
    print(f"== {leg.name}: building {leg.venv.relative_to(ROOT)}", flush=True)
    shutil.rmtree(leg.venv, ignore_errors=True)
    log = VENVS / f"{leg.name}.install.log"
    with open(log, "w") as out:
        steps = [
            [find_python(leg.python), "-m", "venv", str(leg.venv)],
            [str(python), "-m", "pip", "install", "--upgrade", "pip"],
            [str(python), "-m", "pip", "install", "-r", str(leg.requirements), "-e", f"{ROOT}[{leg.extras}]"],
        ]
        for step in steps:
            out.write(f"$ {' '.join(step)}\n")
            out.flush()
            if subprocess.run(step, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT).returncode != 0:
                tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
                raise RuntimeError(f"installing {leg.name} failed (full log: {log}):\n{tail}")
    stamp_file.write_text(wanted)
    return time.monotonic() - started


def _installed(python: Path) -> tuple[str, str]:
    code = (
        "import importlib.metadata as m, platform; "
        "print(m.version('apache-airflow'), platform.python_version())"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{python} cannot report its Airflow version: {done.stderr.strip()[-500:]}")
    airflow, python_version = done.stdout.split()
    return airflow, python_version


def _child_env(report: Path) -> dict[str, str]:
    # The tests build their own Airflow home and connections: nothing from the caller's may leak in.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "TOGETHER_", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    env["TOGETHER_MATRIX_REPORT"] = str(report)
    return env


def build_venvs(legs: list[Leg], *, jobs: int, reinstall: bool) -> dict[str, float | RuntimeError]:
    """Build the legs' venvs ``jobs`` at a time, before any test runs: an install waits on downloads and
    disk more than on the CPU, so a few side by side take little longer than one. Returns each leg's
    install seconds, or the error that stopped its install."""

    def build(leg: Leg) -> float:
        with _locked(leg):
            return ensure_venv(leg, reinstall=reinstall)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {leg.name: pool.submit(build, leg) for leg in legs}
    built: dict[str, float | RuntimeError] = {}
    for name, future in futures.items():
        try:
            built[name] = future.result()
        except RuntimeError as exc:
            built[name] = exc
    return built


def run_leg(
    leg: Leg, pytest_args: list[str], *, reinstall: bool = False, built: float | RuntimeError | None = None
) -> Result:
    """One leg's tests in its venv; ``built`` is what build_venvs said of it, if it built the venv."""
    result = Result(leg)
    try:
        with _locked(leg):
            if isinstance(built, RuntimeError):
                raise built
            result.install_seconds = ensure_venv(leg, reinstall=reinstall) if built is None else built
            python = leg.venv / "bin" / "python"
            result.airflow_version, result.python_version = _installed(python)
            versions = f"Airflow {result.airflow_version}, Python {result.python_version}"
            print(f"== {leg.name}: {versions}", flush=True)
            with tempfile.TemporaryDirectory(prefix=f"together-matrix-{leg.name}-") as tmp:
                report = Path(tmp) / "report.json"
                log = VENVS / f"{leg.name}.pytest.log"
                started = time.monotonic()
                with open(log, "w") as out:
                    completed = subprocess.run(
                        [str(python), "-m", "pytest", *PYTEST_ARGS, *pytest_args],
                        cwd=ROOT,
                        env=_child_env(report),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                result.test_seconds = time.monotonic() - started
                result.exitstatus = completed.returncode
                lines = log.read_text(errors="replace").splitlines()
                if report.exists():
                    data = json.loads(report.read_text())
                    result.suites = data["suites"]
                    result.failures = data["failures"]
                if completed.returncode != 0:
                    print(f"== {leg.name}: pytest exited {completed.returncode}; end of {log}:", flush=True)
                    print("\n".join(lines[-40:]), flush=True)
                else:
                    print(f"== {leg.name}: {lines[-1] if lines else ''}", flush=True)
    except RuntimeError as exc:
        result.error = str(exc)
        print(f"== {leg.name}: {exc}", flush=True)
    return result


def _cell(counts: dict[str, float] | None) -> str:
    if not counts:
        return "-"
    passed, failed, skipped = int(counts["passed"]), int(counts["failed"]), int(counts["skipped"])
    text = f"{passed} passed" if not failed else f"FAILED {failed}/{passed + failed}"
    if skipped:
        text += f", {skipped} skipped"
    return text


def table(results: list[Result]) -> str:
    header = ["Airflow", "Python", *SUITES, "result", "install", "tests"]
    rows = []
    for r in results:
        if r.error is not None:
            cells = ["not run"] * len(SUITES)
        else:
            cells = [_cell(r.suites.get(suite)) for suite in SUITES]
        rows.append(
            [
                r.airflow_version if r.airflow_version != "?" else r.leg.airflow,
                r.python_version if r.python_version != "?" else r.leg.python,
                *cells,
                "ok" if r.ok else "FAIL",
                f"{r.install_seconds:.0f} s",
                f"{r.test_seconds:.0f} s",
            ]
        )
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return (
            "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        )

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("legs", nargs="*", help="AIRFLOW_MINOR[@PYTHON], e.g. 2.11 or 3.3@3.12")
    parser.add_argument("--full", action="store_true", help=f"every leg: {' '.join(FULL_LEGS)}")
    parser.add_argument(
        "--compat",
        action="store_true",
        help=f"only the version-sensitive tests (COMPAT_TESTS); legs default to {' '.join(COMPAT_LEGS)}",
    )
    parser.add_argument("--reinstall", action="store_true", help="rebuild the venvs even if unchanged")
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"pytest processes per leg (pytest-xdist's -n; 0: in pytest's own), default {DEFAULT_WORKERS}",
    )
    parser.add_argument(
        "--install-jobs",
        type=int,
        default=1,
        metavar="N",
        help="build up to N venvs side by side before the tests (which still run one leg at a time)",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build the legs' venvs (--install-jobs at a time) and run no test: CI builds them all at once, "
        "beside other work, and runs each leg's tests later",
    )
    args = parser.parse_args(argv)
    if args.full:
        specs = list(FULL_LEGS)
    elif args.legs:
        specs = args.legs
    else:
        specs = list(COMPAT_LEGS if args.compat else CI_LEGS)
    legs = [Leg.parse(spec) for spec in specs]
    pytest_args = ["-n", str(args.workers), *(COMPAT_TESTS if args.compat else ()), *extra]

    started = time.monotonic()
    built: dict[str, float | RuntimeError] = {}
    if args.build_only:
        built = build_venvs(legs, jobs=args.install_jobs, reinstall=args.reinstall)
        for name, outcome in built.items():
            ready = not isinstance(outcome, RuntimeError)
            print(f"== {name}: {f'{outcome:.0f} s installing' if ready else f'not built: {outcome}'}")
        print(f"{len(legs)} venvs in {time.monotonic() - started:.0f} s")
        return 0 if all(not isinstance(outcome, RuntimeError) for outcome in built.values()) else 1
    if args.install_jobs > 1:
        built = build_venvs(legs, jobs=args.install_jobs, reinstall=args.reinstall)
    results = [run_leg(leg, pytest_args, reinstall=args.reinstall, built=built.get(leg.name)) for leg in legs]
    print()
    print(table(results))
    for r in results:
        for nodeid in r.failures[:20]:
            print(f"  {r.leg.name} FAILED {nodeid}")
    totals = {
        key: sum(int(c[key]) for r in results for c in r.suites.values())
        for key in ("passed", "failed", "skipped")
    }
    failed = totals["failed"] + sum(1 for r in results if not r.ok and not r.failures)
    print(f"\n{len(legs)} legs in {time.monotonic() - started:.0f} s")
    line = f"matrix: {totals['passed']} passed, {failed} failed"
    print(line + (f", {totals['skipped']} skipped" if totals["skipped"] else ""))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
