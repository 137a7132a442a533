"""The Airflow settings of the e2e stack: docker/airflow.env (shared with docker-compose) plus the keys
that differ per deployment (hosts, ports, paths, secrets), and nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = ROOT / "docker" / "airflow.env"

# What each deployment gives itself; docker-compose.yaml sets these per service, the harness per run.
DEPLOYMENT_KEYS = frozenset(
    {
        "AIRFLOW_HOME",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
        "AIRFLOW__CORE__DAGS_FOLDER",
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE",
        "AIRFLOW_CONN_TOGETHER_DEFAULT",
        "AIRFLOW_CONN_E2E_S3",
        "TOGETHER_API_KEY",
        "TOGETHER_EXAMPLE_POLL_INTERVAL",
        "TOGETHER_EXAMPLE_OUTPUT_DIR",
        "TOGETHER_EXAMPLE_RESULTS_URL",
    }
)


def read_env_file(path: Path = ENV_FILE) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads them; this file avoids quoting so both agree."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or key != key.strip() or not key:
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        if value[:1] in ("'", '"') or "$" in value:
            raise ValueError(f"{path}:{number}: no quotes or $ expansion, so compose and the harness agree")
        values[key] = value
    return values


def airflow_environment(base: Mapping[str, str], deployment: Mapping[str, str]) -> dict[str, str]:
    """The environment of an Airflow process: ``base`` without any Airflow or Together setting (a
    developer's shell must not change what is tested), the shared file, then the deployment's keys."""
    shared = read_env_file()
    stray = set(deployment) - DEPLOYMENT_KEYS
    if stray:
        raise ValueError(f"not deployment keys (put shared settings in {ENV_FILE.name}): {sorted(stray)}")
    overlap = set(deployment) & set(shared)
    if overlap:
        raise ValueError(f"{ENV_FILE.name} already sets {sorted(overlap)}")
    env = {
        key: value for key, value in base.items() if not key.startswith(("AIRFLOW", "_AIRFLOW", "TOGETHER_"))
    }
    env.update(shared)
    env.update(deployment)
    return env
