"""The emulator's fault scripts over real HTTP: statuses, drops, slow and broken answers, seeds."""

from __future__ import annotations

import pytest
import requests

from tests.emulator.helpers import (
    AUTH,
    CHAT,
    assert_batch_error,
    assert_error_data,
    chat_line,
    jsonl,
    submit,
    upload,
)


def test_status_fault_with_retry_after_times_and_log(emu, http):
    job = submit(emu, http, [chat_line("a")])
    emu.clear_requests_log()
    requests.post(
        f"{emu.url}/_emulator/faults",
        json={
            "rules": [
                {
                    "method": "GET",
                    "path": "^/v1/batches/[^/]+$",
                    "kind": "status",
                    "status": 429,
                    "retry_after": "1",
                    "times": 2,
                }
            ]
        },
    ).raise_for_status()
    url = f"{emu.url}/v1/batches/{job['id']}"
    for _ in range(2):
        limited = http.get(url)
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
        assert_batch_error(limited.json())
    assert http.get(url).status_code == 200
    log = requests.get(f"{emu.url}/_emulator/requests").json()
    assert [(entry["status"], entry["fault"]) for entry in log] == [
        (429, "status"),
        (429, "status"),
        (200, None),
    ]
    assert all(entry["method"] == "GET" and entry["path"] == f"/v1/batches/{job['id']}" for entry in log)
    assert requests.get(f"{emu.url}/_emulator/faults").json()["rules"][0]["remaining"] == 0


def test_status_fault_headers_and_file_family_body(emu, http):
    emu.set_faults(
        {
            "path": "^/v1/files$",
            "kind": "status",
            "status": 503,
            "retry_after_ms": 250,
            "should_retry": False,
            "retry_after_http_date": 2,
        }
    )
    response = http.get(f"{emu.url}/v1/files")
    assert response.status_code == 503
    assert response.headers["retry-after-ms"] == "250" and response.headers["x-should-retry"] == "false"
    assert response.headers["Retry-After"].endswith("GMT")
    assert_error_data(response.json())
    assert response.json()["error"]["type"] == "server_error"


def test_status_fault_with_custom_body(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "status", "status": 402, "body": "<h1>pay up</h1>"})
    response = http.get(f"{emu.url}/v1/batches")
    assert response.status_code == 402 and response.text == "<h1>pay up</h1>"


def test_drop_fault_closes_connection(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "drop"})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{emu.url}/v1/batches", headers=AUTH)
    assert requests.get(f"{emu.url}/v1/batches", headers=AUTH).status_code == 200
    assert emu.requests_log(path="/v1/batches")[0] | {"time": 0} == {
        "method": "GET",
        "path": "/v1/batches",
        "status": None,
        "time": 0,
        "fault": "drop",
    }


def test_slow_fault_triggers_read_timeout(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "slow", "delay": 1.0})
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{emu.url}/v1/batches", headers=AUTH, timeout=0.2)
    assert requests.get(f"{emu.url}/v1/batches", headers=AUTH, timeout=2).status_code == 200
    # The rule fired once: the second request was answered without the delay.
    assert [e["fault"] for e in emu.requests_log(path="/v1/batches")] == ["slow", None]


def test_malformed_fault_sends_broken_json(emu, http):
    job = submit(emu, http, [chat_line("a")])
    emu.set_faults(
        {"path": "^/v1/batches/", "kind": "malformed"},
        {"path": "^/v1/batches$", "kind": "malformed", "phase": "after"},
        append=False,
    )
    for url in (f"{emu.url}/v1/batches/{job['id']}", f"{emu.url}/v1/batches"):
        response = http.get(url)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            response.json()


def test_html_fault_looks_like_a_proxy(emu, http):
    emu.set_faults(
        {"kind": "html", "path": "^/v1/files$"}, {"kind": "html", "status": 504, "path": "^/v1/batches"}
    )
    first = http.get(f"{emu.url}/v1/files")
    assert first.status_code == 502 and first.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in first.text
    assert http.get(f"{emu.url}/v1/batches").status_code == 504


def test_truncate_fault_cuts_a_download_midway(emu, http):
    record = emu.create_synthetic_file(100_000)
    emu.set_faults({"path": "/content$", "kind": "truncate", "truncate_at": 1_000, "after": 1})
    url = f"{emu.url}/v1/files/{record['id']}/content"
    assert len(http.get(url).content) == 100_000, "after: 1 lets the first download through"
    response = http.get(url, stream=True)
    assert response.headers["Content-Length"] == "100000"
    received = bytearray()
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for chunk in response.iter_content(100):  # divides 1000: a short last read is dropped
            received.extend(chunk)
    assert len(received) == 1_000
    assert len(http.get(url).content) == 100_000, "the rule is spent"


def test_truncate_fault_on_json_answer(emu, http):
    emu.set_faults({"path": "^/v1/batches$", "kind": "truncate"})
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        http.get(f"{emu.url}/v1/batches").content  # noqa: B018


def test_after_fails_the_second_call_and_phase_after_keeps_side_effects(emu, http):
    file_id = upload(emu, http, jsonl([chat_line("a")]))["id"]
    emu.set_faults(
        {
            "method": "POST",
            "path": "^/v1/batches$",
            "kind": "status",
            "status": 500,
            "after": 1,
            "phase": "after",
        }
    )
    assert (
        http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_id}).status_code
        == 201
    )
    lost = http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_id})
    assert lost.status_code == 500
    assert_batch_error(lost.json())
    assert len(http.get(f"{emu.url}/v1/batches").json()) == 2, "the failed answer still created a batch"


def test_random_faults_are_seeded(emu, http):
    def run() -> list[int]:
        emu.set_faults(rate=0.5, kinds=["status"], seed=7, statuses=[500, 503])
        return [http.get(f"{emu.url}/v1/batches").status_code for _ in range(20)]

    first = run()
    assert first == run()
    assert {500, 503, 200} <= set(first)
    emu.set_faults(rate=1.0, kinds=["html"])
    proxied = http.get(f"{emu.url}/v1/files")
    assert proxied.status_code >= 500 and proxied.headers["Content-Type"].startswith("text/html")
    assert requests.put(f"{emu.url}/_emulator/uploads/x?token=y").status_code == 403, "only /v1 by default"
    emu.clear_faults()
    assert http.get(f"{emu.url}/v1/files").status_code == 200


def test_fault_script_validation_and_delete(emu):
    for script in (
        {"rules": [{"kind": "explode"}]},
        {"rules": [{"kind": "status", "colour": 1}]},
        {"rules": [{"kind": "status", "path": "("}]},
        {"rate": 2},
        {"rules": "x"},
    ):
        assert requests.post(f"{emu.url}/_emulator/faults", json=script).status_code == 400
    requests.post(f"{emu.url}/_emulator/faults", json={"rules": [{"kind": "drop"}]}).raise_for_status()
    requests.post(f"{emu.url}/_emulator/faults", json={"rules": [{"kind": "html"}], "append": True})
    assert len(requests.get(f"{emu.url}/_emulator/faults").json()["rules"]) == 2
    assert requests.delete(f"{emu.url}/_emulator/faults").status_code == 200
    assert requests.get(f"{emu.url}/_emulator/faults").json() == {"rules": [], "random": None}
