"""The e2e harness's reads of Airflow's API ride out Airflow's own 5xx (3.3.2's GET /assets/events answers
500 while a run one of its events created has not started), bounded, and never retry a refusal."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.e2e import airflow_api
from tests.e2e.airflow_api import AirflowAPI, AirflowServerError

EVENT = {"id": 1, "created_dagruns": [{"start_date": None}]}


class _Airflow(BaseHTTPRequestHandler):
    """Answers GET /api/v2/assets/events with the statuses queued in ``server.statuses`` (200 once they
    run out), one per request."""

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        queued = self.server.statuses  # type: ignore[attr-defined]
        status = queued.pop(0) if queued else 200
        body = (
            json.dumps({"asset_events": [EVENT]}).encode()
            if status == 200
            else b'{"detail": "Internal Server Error"}'
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def airflow() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Airflow)
    server.statuses = []  # type: ignore[attr-defined]
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def no_pause(monkeypatch):
    monkeypatch.setattr(airflow_api, "READ_PAUSE", 0.0)


def api_for(server: ThreadingHTTPServer) -> AirflowAPI:
    return AirflowAPI(f"http://127.0.0.1:{server.server_address[1]}", "admin", "admin")


def test_asset_events_rides_out_a_500(airflow):
    airflow.statuses = [500, 500]
    events = api_for(airflow).asset_events(7)
    assert events == [EVENT]
    assert len(airflow.paths) == 3
    assert all(path.startswith("/api/v2/assets/events?") for path in airflow.paths)


def test_asset_events_gives_up_after_the_bounded_attempts(airflow):
    airflow.statuses = [500] * (airflow_api.READ_ATTEMPTS + 5)
    with pytest.raises(AirflowServerError, match="500"):
        api_for(airflow).asset_events(7)
    assert len(airflow.paths) == airflow_api.READ_ATTEMPTS


def test_a_refusal_is_not_retried(airflow):
    airflow.statuses = [404]
    with pytest.raises(RuntimeError, match="404") as caught:
        api_for(airflow).asset_events(7)
    assert not isinstance(caught.value, AirflowServerError)
    assert len(airflow.paths) == 1
