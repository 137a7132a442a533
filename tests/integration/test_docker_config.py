"""docker/docker-compose.yaml stays the deployment the e2e harness tests: no Docker engine runs in CI, so
its topology, its settings' single source (docker/airflow.env) and its versions are checked here."""

from __future__ import annotations

import re
from collections import Counter
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from tests.e2e.airflow_env import DEPLOYMENT_KEYS, ENV_FILE, airflow_environment, read_env_file

DOCKER = Path(__file__).resolve().parents[2] / "docker"
# Container plumbing with no Airflow meaning, so not a setting that could drift from the harness.
CONTAINER_ONLY_KEYS = {"DUMB_INIT_SETSID"}
SECRET_WORDS = ("SECRET", "FERNET", "PASSWORD", "TOGETHER_API_KEY")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def airflow_services(compose) -> dict[str, dict]:
    """Services that run an Airflow command: built from our Dockerfile and not the emulator."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("build", {}).get("dockerfile") == "docker/Dockerfile" and "entrypoint" not in service
    }


def _environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def _dockerfile_airflow_version() -> str:
    text = (DOCKER / "Dockerfile").read_text()
    found = re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", text, re.MULTILINE)
    assert found, "docker/Dockerfile must pin ARG AIRFLOW_VERSION=<version>"
    assert re.search(r"^FROM apache/airflow:\$\{AIRFLOW_VERSION\}$", text, re.MULTILINE)
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in text, "pip must not upgrade the image's Airflow"
    return found.group(1)


def test_topology_is_the_e2e_topology(compose, airflow_services):
    commands = Counter(" ".join(service["command"]) for service in airflow_services.values())
    assert commands == Counter(
        {
            "db migrate": 1,
            "api-server": 1,
            "scheduler": 1,
            "dag-processor": 1,
            "celery worker": 1,
            "triggerer": 2,
        }
    )
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    emulator = services["together-emulator"]
    assert emulator["profiles"] == ["emulator"]
    assert emulator["entrypoint"] == ["together-emulator"]
    with_profiles = {name for name, service in services.items() if service.get("profiles")}
    assert with_profiles == {"together-emulator"}, "only the emulator is optional"


def test_every_airflow_service_reads_the_shared_env_file(airflow_services):
    for name, service in airflow_services.items():
        assert [(DOCKER / path).resolve() for path in service["env_file"]] == [ENV_FILE.resolve()], name


def test_compose_adds_only_what_differs_per_deployment(airflow_services):
    shared = read_env_file()
    for name, service in airflow_services.items():
        keys = set(_environment(service))
        assert keys <= DEPLOYMENT_KEYS | CONTAINER_ONLY_KEYS, f"{name}: put shared settings in airflow.env"
        assert not keys & set(shared), f"{name} overrides airflow.env: {sorted(keys & set(shared))}"
        env = _environment(service)
        for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert env[key].startswith("${") and ":?" in env[key], f"{name}: {key} must come from the shell"


def test_shared_env_file_runs_celery_and_holds_no_secret():
    shared = read_env_file()
    assert shared["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "SimpleAuthManager" in shared["AIRFLOW__CORE__AUTH_MANAGER"]
    assert not [key for key in shared if any(word in key for word in SECRET_WORDS)]
    assert not set(shared) & DEPLOYMENT_KEYS


def test_images_and_versions_match(compose, airflow_services):
    pinned = _dockerfile_airflow_version()
    images = {service["image"] for service in airflow_services.values()}
    images.add(compose["services"]["together-emulator"]["image"])
    assert images == {f"airflow-provider-together:{pinned}"}
    installed = version("apache-airflow")
    # The harness runs the Airflow this venv has: it must be the image's release line.
    assert installed.split(".")[:2] == pinned.split(".")[:2], (
        f"e2e runs Airflow {installed}, the image {pinned}: bump ARG AIRFLOW_VERSION in docker/Dockerfile"
    )
    for name in ("postgres", "redis"):
        tag = compose["services"][name]["image"].partition(":")[2]
        assert re.fullmatch(r"\d+(\.\d+)*", tag), f"{name} must pin a version, not {tag!r}"


def test_e2e_harness_reads_the_same_file(monkeypatch):
    from tests.e2e.stack import Stack

    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "SequentialExecutor")  # a developer's shell leaks nothing
    stack = Stack()
    try:
        env = stack._airflow_env("airflow:pw@127.0.0.1:1/airflow", "redis://127.0.0.1:2/0", "http://e", 3)
    finally:
        stack.remove()
    for key, value in read_env_file().items():
        assert env[key] == value
    assert not {key for key in env if key.startswith("AIRFLOW")} - set(read_env_file()) - DEPLOYMENT_KEYS
    with pytest.raises(ValueError, match="not deployment keys"):
        airflow_environment({}, {"AIRFLOW__CORE__PARALLELISM": "1"})
