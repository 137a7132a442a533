"""A pytest plugin for the version matrix: counts outcomes per suite and writes them as JSON.

Loaded with ``-p tests.tooling.matrix.suites``; the file named by ``TOGETHER_MATRIX_REPORT`` receives
``{"suites": {suite: {"passed": n, "failed": n, "skipped": n, "seconds": s}}, "failures": [...]}``.
Suites follow the test tree, except that integration tests running Airflow against a migrated metadata
DB (``dag.test()`` runs and the Airflow CLI, i.e. those using the ``airflow_db`` fixture) are the
"dag.test" suite: that is where Airflow versions differ most.

Under pytest-xdist (``-n``) the workers collect and run the tests and the controller only receives their
reports: each test's suite rides on its reports (a ``user_properties`` entry, which xdist carries across),
so the controller, which alone writes the file, counts what every worker ran.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

SUITES = ("unit", "integration", "dag.test", "conformance")
_REPORT_ENV = "TOGETHER_MATRIX_REPORT"

_SUITE_PROPERTY = "together_suite"

_suite_of: dict[str, str] = {}
_outcome: dict[str, str] = {}
_seconds: dict[str, float] = {}


def suite_of(path: str, fixturenames: list[str] | tuple[str, ...]) -> str:
    parts = Path(path).parts
    if "tests" not in parts:
        return "other"
    top = parts[parts.index("tests") + 1] if parts.index("tests") + 1 < len(parts) else ""
    if top == "integration" and "airflow_db" in fixturenames:
        return "dag.test"
    if top in ("security", "emulator"):
        # Integration tests by kind (code against a server on loopback), kept apart only so the hostile
        # cases, and the emulator's own, read as one folder each.
        return "integration"
    if top == "tooling":
        return "unit"
    return top if top in SUITES else "other"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Only where the tests are collected (the one process, or each xdist worker) are the fixtures known.
    for item in items:
        suite = suite_of(str(item.path), tuple(getattr(item, "fixturenames", ())))
        item.user_properties.append((_SUITE_PROPERTY, suite))


def _suite_in(report: pytest.TestReport) -> str:
    for name, value in report.user_properties:
        if name == _SUITE_PROPERTY:
            return str(value)
    # A report made without the item (a crashed xdist worker's test): a suite seen on an earlier report
    # of the test, else its path's.
    return _suite_of.get(report.nodeid) or suite_of(report.nodeid.partition("::")[0], ())


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module skipped as a whole (an optional dependency too old, say) has no test items to count.
    # (Under xdist the controller gets such a report too: keyed by the module, it counts once.)
    if report.skipped:
        _suite_of[report.nodeid] = suite_of(report.nodeid, ())
        _outcome[report.nodeid] = "skipped"


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _suite_of[report.nodeid] = _suite_in(report)
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration
    previous = _outcome.get(report.nodeid)
    if report.failed:
        # An error in setup or teardown fails the test as much as a failed call does.
        _outcome[report.nodeid] = "failed"
    elif report.skipped and previous is None:
        _outcome[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and previous is None:
        _outcome[report.nodeid] = "passed"


def summary() -> dict[str, Any]:
    suites: dict[str, dict[str, Any]] = {}
    for nodeid, suite in _suite_of.items():
        outcome = _outcome.get(nodeid)
        if outcome is None:
            continue  # deselected or never reached
        counts = suites.setdefault(suite, {"passed": 0, "failed": 0, "skipped": 0, "seconds": 0.0})
        counts[outcome] += 1
        counts["seconds"] += _seconds.get(nodeid, 0.0)
    failures = sorted(nodeid for nodeid, outcome in _outcome.items() if outcome == "failed")
    return {"suites": suites, "failures": failures}


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get(_REPORT_ENV)
    # An xdist worker saw only its share: the controller, which got every report, writes the file.
    if target and not hasattr(session.config, "workerinput"):
        data = summary()
        data["exitstatus"] = int(exitstatus)
        Path(target).write_text(json.dumps(data, indent=1))
