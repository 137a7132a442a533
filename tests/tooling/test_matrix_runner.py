"""The version matrix's own bookkeeping: which suite a test belongs to, and the table it prints."""

from __future__ import annotations

import pytest

from tests.tooling.matrix import run, suites


@pytest.mark.parametrize(
    ("path", "fixtures", "suite"),
    [
        ("/repo/tests/unit/client/test_retry.py", (), "unit"),
        ("/repo/tests/integration/test_hook.py", ("emu",), "integration"),
        ("/repo/tests/integration/test_dags.py", ("run_dag", "airflow_db"), "dag.test"),
        ("/repo/tests/security/test_call_deadline.py", ("hostile",), "integration"),
        ("/repo/tests/emulator/test_batches.py", ("emu",), "integration"),
        ("/repo/tests/tooling/test_e2e_airflow_api.py", (), "unit"),
        ("/repo/tests/conformance/test_together_sdk.py", (), "conformance"),
        ("tests/conformance/test_together_sdk.py", (), "conformance"),
        ("/repo/scripts/demo.py", (), "other"),
    ],
)
def test_suite_of(path, fixtures, suite):
    assert suites.suite_of(path, fixtures) == suite


def test_leg_spec():
    assert run.Leg.parse("2.11") == run.Leg("2.11", run.DEFAULT_PYTHON)
    leg = run.Leg.parse("3.3@3.12")
    assert (leg.airflow, leg.python, leg.name) == ("3.3", "3.12", "airflow-3.3-py3.12")
    assert leg.requirements.name == "requirements-3.3.txt"


def test_every_leg_has_its_pins():
    for spec in {*run.CI_LEGS, *run.FULL_LEGS}:
        text = run.Leg.parse(spec).requirements.read_text()
        assert "apache-airflow==" in text, spec


def test_table_marks_failures_and_missing_suites():
    counts = {"passed": 3, "failed": 0, "skipped": 1, "seconds": 1.0}
    ok = run.Result(run.Leg.parse("2.11"), "2.11.2", "3.11.7", 40.0, 170.0, 0, {"unit": counts}, [])
    bad = run.Result(
        run.Leg.parse("3.0"),
        "3.0.6",
        "3.11.7",
        0.0,
        90.0,
        1,
        {"dag.test": {"passed": 28, "failed": 2, "skipped": 0, "seconds": 9.0}},
        ["tests/integration/test_dags.py::test_timeout[poke]"],
    )
    broken = run.Result(run.Leg.parse("3.1"), error="installing failed")
    lines = run.table([ok, bad, broken]).splitlines()
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    assert header == ["Airflow", "Python", *run.SUITES, "result", "install", "tests"]
    assert "3 passed, 1 skipped" in lines[2] and "| ok " in lines[2]
    assert "FAILED 2/30" in lines[3] and "| FAIL " in lines[3]
    assert "not run" in lines[4] and "| 3.1 " in lines[4]


def test_compat_tests_exist_and_every_compat_leg_has_its_pins():
    missing = []
    for entry in run.COMPAT_TESTS:
        path, _, test = entry.partition("::")
        source = run.ROOT / path
        # A renamed test must not drop out of CI silently: its function is still in the file named.
        if not source.is_file() or (test and f"def {test.partition('[')[0]}(" not in source.read_text()):
            missing.append(entry)
    assert missing == []
    assert set(run.COMPAT_LEGS) <= {spec.partition("@")[0] for spec in run.FULL_LEGS}
    for spec in run.COMPAT_LEGS:
        assert "apache-airflow==" in run.Leg.parse(spec).requirements.read_text(), spec


def _pins_a_prerelease(minor: str) -> bool:
    from packaging.version import Version

    text = run.Leg.parse(minor).requirements.read_text()
    return any(
        Version(line.partition("==")[2].strip()).is_prerelease
        for line in text.splitlines()
        if line.startswith("apache-airflow==")
    )


def test_every_supported_minor_is_in_ci():
    """CI runs the CI legs whole and the compat legs on COMPAT_TESTS: no minor of the full matrix is left
    out of every change's run (a feature that breaks one release alone shows up there). A leg that pins
    an Airflow pre-release (3.4.0b2) is in the full matrix only: a beta must not fail a change."""
    full = {spec.partition("@")[0] for spec in run.FULL_LEGS}
    betas = {minor for minor in full if _pins_a_prerelease(minor)}
    assert full - betas == {*run.CI_LEGS, *run.COMPAT_LEGS}
    assert not betas & {*run.CI_LEGS, *run.COMPAT_LEGS}


def test_pin_lines_carry_a_reason():
    """Each pin in a leg file follows a comment saying why, with only pins between (the Airflow release
    and the providers every leg shares excepted)."""
    shared = (
        "apache-airflow==",
        "apache-airflow-providers-http==",
        "apache-airflow-providers-common-compat==",
    )
    for path in sorted(run.HERE.glob("requirements-*.txt")):
        explained = False
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                explained = True
            elif not line.strip():
                explained = False
            elif not line.startswith(shared):
                assert explained, f"{path.name}: {line!r} has no comment saying why"
