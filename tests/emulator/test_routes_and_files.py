"""The emulator over real HTTP on 127.0.0.1: authentication, routes, and the Files API."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import requests

from tests.emulator.helpers import (
    API_KEY,
    assert_batch_error,
    assert_error_data,
    chat_line,
    content_lines,
    create,
    jsonl,
    upload,
    wait_for,
)
from together_provider.testing.emulator import EmulatorServer


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic test-key"}]
)
def test_auth_batch_routes_answer_string_error(emu, headers):
    for method, path in (
        ("GET", "/v1/batches"),
        ("GET", f"/v1/batches/{uuid.uuid4()}"),
        ("POST", "/v1/batches"),
    ):
        response = requests.request(method, emu.url + path, headers=headers, json={})
        assert response.status_code == 401
        assert_batch_error(response.json())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
def test_auth_file_routes_answer_error_data(emu, headers):
    for method, path in (
        ("GET", "/v1/files"),
        ("GET", "/v1/files/file-x/content"),
        ("POST", "/v1/files/upload"),
    ):
        response = requests.request(method, emu.url + path, headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert_error_data(body)
        assert body["error"]["code"] == "invalid_api_key"


def test_only_v1_prefix_is_served(emu, http):
    assert http.get(f"{emu.url}/batches").status_code == 404
    assert http.get(f"{emu.url}/v1/batches").status_code == 200


# Files


def test_one_shot_upload_returns_full_file_object(emu, http):
    content = jsonl([chat_line("a")])
    record = upload(emu, http, content)
    assert record["id"].startswith("file-")
    uuid.UUID(record["id"].removeprefix("file-"))
    assert record["object"] == "file"
    assert isinstance(record["created_at"], int)
    assert record["filename"] == "input.jsonl"
    assert record["bytes"] == len(content)
    assert record["purpose"] == "batch-api"
    assert record["FileType"] == "jsonl"
    assert record["Processed"] is True
    assert record["processing_status"] == "COMPLETED"


@pytest.mark.parametrize(
    ("data", "send_file", "param"),
    [
        ({"purpose": "batch-api", "file_name": "input.txt"}, True, "file_name"),
        ({"purpose": "batch-api"}, True, "file_name"),
        ({"purpose": "nonsense", "file_name": "input.jsonl"}, True, "purpose"),
        ({"purpose": "batch-api", "file_name": "input.jsonl", "file_type": "xml"}, True, "file_type"),
        ({"purpose": "batch-api", "file_name": "input.jsonl"}, False, "file"),
    ],
)
def test_one_shot_upload_validation(emu, http, data, send_file, param):
    files = {"file": ("x", b'{"a": 1}\n')} if send_file else {"unused": ("", b"")}
    response = http.post(f"{emu.url}/v1/files/upload", data=data, files=files)
    assert response.status_code == 400
    assert_error_data(response.json())
    assert response.json()["error"]["param"] == param
    assert http.get(f"{emu.url}/v1/files").json() == {"data": []}


def test_sdk_style_upload_flow(emu, http):
    content = jsonl([chat_line("a"), chat_line("b")])
    checksum = hashlib.sha256(content).hexdigest()
    form = {"purpose": "batch-api", "file_name": "in.jsonl", "file_type": "jsonl", "checksum": checksum}
    first = http.post(
        f"{emu.url}/v1/files", files={k: (None, v) for k, v in form.items()}, allow_redirects=False
    )
    assert first.status_code == 302
    file_id = first.headers["X-Together-File-Id"]
    location = first.headers["Location"]
    assert location.startswith(f"{emu.url}/_emulator/uploads/{file_id}?token=")
    # Not visible and not preprocessable before the bytes arrive.
    assert http.get(f"{emu.url}/v1/files/{file_id}").status_code == 404
    assert http.post(f"{emu.url}/v1/files/{file_id}/preprocess").status_code == 400
    assert requests.put(location.split("?")[0] + "?token=wrong", data=content).status_code == 403
    put = requests.put(location, data=content)  # no auth header, like a presigned URL
    assert put.status_code == 200
    done = http.post(f"{emu.url}/v1/files/{file_id}/preprocess")
    assert done.status_code == 200
    assert done.json()["id"] == file_id and done.json()["bytes"] == len(content)
    assert done.json()["Processed"] is True and done.json()["processing_status"] == "COMPLETED"
    again = http.post(
        f"{emu.url}/v1/files", files={k: (None, v) for k, v in form.items()}, allow_redirects=False
    )
    assert again.status_code == 409
    assert again.json()["file_id"] == file_id
    assert http.get(f"{emu.url}/v1/files/{file_id}/content").content == content


def test_multipart_upload_flow(emu, http):
    parts = [b'{"custom_id": "a", "body": {"model": "m"}}\n', b'{"custom_id": "b", "body": {"model": "m"}}\n']
    init = http.post(
        f"{emu.url}/v1/files/multipart/initiate",
        json={
            "file_name": "big.jsonl",
            "file_size": sum(map(len, parts)),
            "num_parts": 2,
            "purpose": "batch-api",
            "file_type": "jsonl",
            "checksum": "0" * 64,
        },
    )
    assert init.status_code == 200, init.text
    info = init.json()
    completed = []
    for part, data in zip(info["parts"], parts, strict=True):
        put = requests.put(part["URL"], data=data, headers=part["Headers"])
        assert put.status_code == 200
        completed.append({"part_number": part["PartNumber"], "etag": put.headers["ETag"].strip('"')})
    done = http.post(
        f"{emu.url}/v1/files/multipart/complete",
        json={"upload_id": info["upload_id"], "file_id": info["file_id"], "parts": completed},
    )
    assert done.status_code == 200, done.text
    assert done.json()["bytes"] == sum(map(len, parts))
    assert http.get(f"{emu.url}/v1/files/{info['file_id']}/content").content == b"".join(parts)


def test_list_get_delete_and_content(emu, http):
    content = jsonl([chat_line("a")])
    first, second = upload(emu, http, content, "one.jsonl"), upload(emu, http, content, "two.csv")
    listed = http.get(f"{emu.url}/v1/files").json()
    assert set(listed) == {"data"}
    assert {f["id"] for f in listed["data"]} == {first["id"], second["id"]}
    assert http.get(f"{emu.url}/v1/files/{second['id']}").json()["FileType"] == "csv"

    response = http.get(f"{emu.url}/v1/files/{first['id']}/content", stream=True)
    assert response.headers["Content-Length"] == str(len(content))
    assert response.raw.read() == content
    ranged = http.get(f"{emu.url}/v1/files/{first['id']}/content", headers={"Range": "bytes=5-"})
    assert ranged.status_code == 206 and ranged.content == content[5:]

    deleted = http.delete(f"{emu.url}/v1/files/{first['id']}")
    assert deleted.json() == {"id": first["id"], "object": "file", "deleted": True}
    for method, suffix in (("GET", ""), ("GET", "/content"), ("DELETE", "")):
        missing = http.request(method, f"{emu.url}/v1/files/{first['id']}{suffix}")
        assert missing.status_code == 404
        assert_error_data(missing.json())
    assert [f["id"] for f in http.get(f"{emu.url}/v1/files").json()["data"]] == [second["id"]]


def test_files_live_on_disk_in_data_dir(tmp_path, http):
    content = jsonl([chat_line(f"id-{i}") for i in range(50)])
    with EmulatorServer(
        api_key=API_KEY, data_dir=tmp_path, validating_seconds=0, processing_seconds=0
    ) as server:
        record = upload(server, http, content)
        on_disk = tmp_path / "files" / record["id"]
        assert on_disk.read_bytes() == content
        assert server.file_path(record["id"]) == on_disk
        job = wait_for(server, http, create(server, http, record["id"])["id"])
        assert (tmp_path / "files" / job["output_file_id"]).stat().st_size > 0
        http.delete(f"{server.url}/v1/files/{record['id']}")
        assert not on_disk.exists()
    assert tmp_path.exists(), "a caller's data_dir is never removed"


def test_synthetic_file_for_download_benchmarks(emu, http):
    made = requests.post(f"{emu.url}/_emulator/files", json={"bytes": 200_000, "filename": "big.jsonl"})
    assert made.status_code == 201
    record = made.json()
    assert record["bytes"] == 200_000 and record["purpose"] == "batch-generated"
    lines = content_lines(emu, http, record["id"])
    assert all("custom_id" in line and line["response"]["status_code"] == 200 for line in lines)
    assert len({line["custom_id"] for line in lines}) == len(lines)
    assert requests.post(f"{emu.url}/_emulator/files", json={"bytes": 10}).status_code == 400
    assert emu.create_synthetic_file(5_000)["bytes"] == 5_000


# Batches: create and validation
