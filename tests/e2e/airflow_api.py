"""The few calls of Airflow's REST API (/api/v2) the scenarios trigger and check runs with."""

from __future__ import annotations

import time
from typing import Any

import requests

TERMINAL_RUN_STATES = ("success", "failed")
# Airflow 3.3.2 answers GET /assets/events with a 500 while a run one of the events created has not
# started yet (its serializer requires created_dagruns[].start_date); the same read moments later works.
READ_ATTEMPTS = 6
READ_PAUSE = 1.0


class AirflowServerError(RuntimeError):
    """Airflow's API answered 5xx: its own failure, not a refusal of the request."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class AirflowAPI:
    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.session = requests.Session()

    def login(self) -> None:
        answer = self.session.post(
            f"{self.base_url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        answer.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=60, **kwargs)
        if answer.status_code == 401:
            self.login()
            answer = self.session.request(method, f"{self.base_url}/api/v2{path}", timeout=60, **kwargs)
        if answer.status_code >= 500:
            raise AirflowServerError(
                f"{method} {path}: {answer.status_code} {answer.text[:500]}", answer.status_code
            )
        if answer.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return answer.json() if answer.content else None

    def _read(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        """A GET that rides out Airflow's own 5xx (a read changes nothing, so asking again is safe): at
        most ``READ_ATTEMPTS`` tries, ``READ_PAUSE`` seconds apart; the last failure is raised as it came."""
        attempts = READ_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                return self._call("GET", path, params=params)
            except AirflowServerError:
                if attempt == attempts:
                    raise
                time.sleep(READ_PAUSE)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def health(self) -> dict[str, Any]:
        answer = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=10)
        answer.raise_for_status()
        return answer.json()

    def alive_triggerer_ids(self) -> set[int]:
        jobs = self._call("GET", "/jobs", params={"job_type": "TriggererJob", "is_alive": "true"})
        return {job["id"] for job in jobs["jobs"]}

    def add_connection(self, conn_id: str, conn_type: str, host: str, password: str) -> None:
        """Stored in the metadata DB, as the UI's connection form stores it."""
        body = {"connection_id": conn_id, "conn_type": conn_type, "host": host, "password": password}
        self._call("POST", "/connections", json=body)

    def import_errors(self) -> list[dict[str, Any]]:
        return self._call("GET", "/importErrors")["import_errors"]

    def dag_ids(self) -> set[str]:
        return {dag["dag_id"] for dag in self._call("GET", "/dags", params={"limit": 100})["dags"]}

    def unpause(self, dag_id: str) -> None:
        self._call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def asset(self, uri: str) -> dict[str, Any] | None:
        """The asset with exactly this URI, its watchers (name, trigger_id) among its fields."""
        assets = self._call("GET", "/assets", params={"uri_pattern": uri, "limit": 100})["assets"]
        return next((asset for asset in assets if asset["uri"] == uri), None)

    def asset_events(self, asset_id: int) -> list[dict[str, Any]]:
        """Every stored event of the asset, oldest first (a page of 100 at a time)."""
        events: list[dict[str, Any]] = []
        while True:
            params = {"asset_id": asset_id, "limit": 100, "offset": len(events), "order_by": "timestamp"}
            page = self._read("/assets/events", params=params)["asset_events"]
            events += page
            if len(page) < 100:
                return events

    def queued_asset_events(self, dag_id: str) -> list[dict[str, Any]]:
        """The asset events queued for the DAG's next run (its AssetDagRunQueue)."""
        return self._call("GET", f"/dags/{dag_id}/assets/queuedEvents")["queued_events"]

    def asset_state(self, asset_id: int) -> dict[str, Any]:
        """The asset's state store (Airflow 3.3+): key -> value."""
        rows = self._call("GET", f"/assets/{asset_id}/state-store", params={"limit": 100})
        return {row["key"]: row["value"] for row in rows["asset_state_store"]}

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> None:
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}
        self._call("POST", f"/dags/{dag_id}/dagRuns", json=body)

    def run_states(self, dag_id: str) -> dict[str, str]:
        runs = self._call("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        return {run["dag_run_id"]: run["state"] for run in runs}

    def wait_runs(self, dag_id: str, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Final states of the runs; a run still going at the timeout keeps its current state."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.run_states(dag_id)
            mine = {run_id: states.get(run_id, "missing") for run_id in run_ids}
            if all(state in TERMINAL_RUN_STATES for state in mine.values()) or time.monotonic() > deadline:
                return mine
            time.sleep(1)

    def task_instances(self, dag_id: str, run_ids: list[str], task_id: str) -> list[dict[str, Any]]:
        body = {"dag_ids": [dag_id], "dag_run_ids": run_ids, "task_ids": [task_id], "page_limit": 100}
        return self._call("POST", "/dags/~/dagRuns/~/taskInstances/list", json=body)["task_instances"]

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self._call("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self._call("GET", path)["value"]
