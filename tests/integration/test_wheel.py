"""The package as a user installs it: the sdist and the wheel built from this tree, the wheel installed in
a fresh virtualenv, and the provider registering and the emulator answering from there.

Built the way ``python -m build --no-isolation`` builds: the PEP 517 hooks of setuptools, the sdist from a
copy of the tree and the wheel from the unpacked sdist (so a file missing from the sdist breaks the wheel).
No isolation, so no download: the build uses the setuptools and wheel of this virtualenv (the ``test``
extra brings wheel). The fresh virtualenv has no site-packages of its own but the wheel; the wheel's
dependencies come from this virtualenv's site-packages through links, leaving out everything of this
distribution (its editable install), so whatever registers was installed from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import pytest

from together_provider import DOCUMENTATION_URL, __version__

ROOT = Path(__file__).resolve().parents[2]
NAME = "airflow-provider-together"
SOURCE_ONLY = ("tests/", "benchmarks/", "dags/", "docker/", "scripts/")
# Build and cache output, never part of the tree a release is built from.
NOT_SOURCE = shutil.ignore_patterns(
    ".venv*", ".git", "out", "build", "dist", "*.egg-info", "__pycache__", ".*_cache"
)
OURS = ("__editable__", "airflow_provider_together", "together_provider")


def _build(hook: str, cwd: Path, out: Path) -> Path:
    code = f"import sys; from setuptools import build_meta; print(build_meta.{hook}(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    work = tmp_path_factory.mktemp("dists")
    tree = work / "tree"
    shutil.copytree(ROOT, tree, ignore=NOT_SOURCE)
    sdist = _build("build_sdist", tree, work)
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    (unpacked,) = (work / "unpacked").iterdir()
    wheel = _build("build_wheel", unpacked, work)
    return sdist, wheel


@pytest.fixture(scope="module")
def fresh_venv(dists, tmp_path_factory):
    """A virtualenv holding only the wheel; its dependencies are linked in from this virtualenv."""
    work = tmp_path_factory.mktemp("venv")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    ours = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = work / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_path("purelib")).iterdir():
        if not entry.name.startswith(OURS):
            (deps / entry.name).symlink_to(entry)
    # addsitedir, not a bare path line: the dependencies' own .pth files are processed as in a real install.
    Path(ours, "zz_dependencies.pth").write_text(f"import site; site.addsitedir({str(deps)!r})\n")
    # fresh_env(): with PYTHONPATH=provider and the egg-info an editable install leaves in provider/, pip
    # found this distribution already installed, said so and installed nothing.
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(dists[1])],
        env=fresh_env(),
        check=True,
        timeout=300,
    )
    return venv, Path(ours)


def fresh_env():
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def test_wheel_holds_the_package_and_nothing_else(dists):
    names = zipfile.ZipFile(dists[1]).namelist()
    info = f"airflow_provider_together-{__version__}.dist-info"
    for needed in (
        "together_provider/py.typed",
        "airflow_provider_together.py",
        "together_provider/testing/emulator/__main__.py",
        f"{info}/entry_points.txt",
    ):
        assert needed in names
    # dist-info/LICENSE from older setuptools, dist-info/licenses/LICENSE from those writing metadata 2.4
    (license_file,) = {f"{info}/LICENSE", f"{info}/licenses/LICENSE"} & set(names)
    shipped = {n for n in names if n.startswith("together_provider/") and n.endswith(".py")}
    in_tree = {
        p.relative_to(ROOT / "provider").as_posix()
        for p in (ROOT / "provider/together_provider").rglob("*.py")
    }
    assert shipped == in_tree
    assert [n for n in names if n.startswith(SOURCE_ONLY) or "/tests/" in n] == []
    license_text = zipfile.ZipFile(dists[1]).read(license_file).decode()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    metadata = zipfile.ZipFile(dists[1]).read(f"{info}/METADATA").decode()
    assert f"Project-URL: Documentation, {DOCUMENTATION_URL}" in metadata
    assert "License-File: LICENSE" in metadata


def test_sdist_holds_the_spec_and_the_licenses_but_no_tests(dists):
    with tarfile.open(dists[0]) as archive:
        top, *_ = archive.getnames()
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    for needed in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "PKG-INFO",
        "spec/together-openapi.yaml",
        "spec/LICENSE-together-openapi",
        "provider/together_provider/py.typed",
        "provider/airflow_provider_together.py",
    ):
        assert needed in names
    assert [n for n in names if n.startswith(SOURCE_ONLY) or n.endswith(".pyc")] == []


PROBE = """
import json, importlib.metadata as md
import airflow_provider_together, together_provider
from airflow.providers_manager import ProvidersManager

dist = md.distribution("airflow-provider-together")
(entry,) = [e for e in dist.entry_points if e.group == "apache_airflow_provider"]
manager = ProvidersManager()
provider = manager.providers["airflow-provider-together"]
print(json.dumps({
    "module": together_provider.__file__,
    "alias": airflow_provider_together.__file__,
    "dist": str(dist.locate_file("")),
    "entry_point": entry.value,
    "info": entry.load()(),
    "registered_version": provider.version,
    "documentation_url": provider.data.get("documentation-url"),
    "hook": manager.hooks["together"].hook_class_name,
}))
"""


def test_provider_registers_from_the_wheel(fresh_venv):
    venv, site = fresh_venv
    done = subprocess.run(
        [venv / "bin" / "python", "-c", PROBE], env=fresh_env(), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(got["module"]).is_relative_to(site) and Path(got["alias"]).is_relative_to(site)
    assert Path(got["dist"]) == site
    assert got["entry_point"] == "together_provider:get_provider_info"
    assert got["info"]["package-name"] == NAME and got["info"]["documentation-url"] == DOCUMENTATION_URL
    assert got["registered_version"] == __version__
    # Airflow 3.1 and 3.2 read the URL from the wheel's "Project-URL: Documentation, <url>" metadata and keep
    # the space after the comma (they split on it without stripping); the URL is ours all the same.
    assert got["documentation_url"].lstrip() == DOCUMENTATION_URL
    assert got["hook"] == "together_provider.hooks.together.TogetherHook"


def test_emulator_runs_from_the_wheel(fresh_venv):
    venv, _site = fresh_venv
    script = venv / "bin" / "together-emulator"
    assert script.read_text().splitlines()[0] == f"#!{venv / 'bin' / 'python'}"
    proc = subprocess.Popen(
        [script, "--host", "127.0.0.1", "--port", "0", "--api-key", "wheel-test-key"],
        env=fresh_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("together-emulator listening on http://127.0.0.1:"), line
        url = line.rsplit(" ", 1)[-1]
        request = urllib.request.Request(
            f"{url}/v1/batches", headers={"Authorization": "Bearer wheel-test-key"}
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert answer.status == 200 and json.loads(answer.read()) == []
    finally:
        proc.terminate()
        proc.wait(timeout=30)
