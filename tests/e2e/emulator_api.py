"""The emulator as the scenarios drive it: its clock and faults (control routes) and what it holds (/v1)."""

from __future__ import annotations

from typing import Any

import requests


class Emulator:
    def __init__(self, url: str, api_key: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self._auth = {"Authorization": f"Bearer {api_key}"}

    def _control(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.session.request(method, f"{self.url}/_emulator/{path}", json=body, timeout=30)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def healthy(self) -> bool:
        try:
            return bool(self._control("GET", "health").get("ok"))
        except requests.RequestException:
            return False

    def set_durations(self, validating_seconds: float, processing_seconds: float) -> None:
        """Applies to batches created from now on."""
        self._control(
            "POST",
            "clock",
            {"validating_seconds": validating_seconds, "processing_seconds": processing_seconds},
        )

    def advance(self, seconds: float) -> None:
        self._control("POST", "clock", {"advance_seconds": seconds})

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        self._control("POST", "faults", {"rules": rules})

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def requests_log(self) -> list[dict[str, Any]]:
        return self._control("GET", "requests")

    def batches(self) -> list[dict[str, Any]]:
        answer = self.session.get(f"{self.url}/v1/batches", headers=self._auth, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def submit(self, file_name: str, content: bytes) -> dict[str, Any]:
        """Upload an input file and create a batch from it straight through /v1, as an app outside
        Airflow would; the created batch."""
        answer = self.session.post(
            f"{self.url}/v1/files/upload",
            headers=self._auth,
            data={"purpose": "batch-api", "file_name": file_name},
            files={"file": (file_name, content, "application/jsonl")},
            timeout=30,
        )
        answer.raise_for_status()
        body = {"endpoint": "/v1/chat/completions", "input_file_id": answer.json()["id"]}
        answer = self.session.post(f"{self.url}/v1/batches", headers=self._auth, json=body, timeout=30)
        answer.raise_for_status()
        return answer.json()["job"]

    def file_text(self, file_id: str) -> str:
        answer = self.session.get(f"{self.url}/v1/files/{file_id}/content", headers=self._auth, timeout=30)
        answer.raise_for_status()
        return answer.text
