"""TogetherHook.download_file's body reading over real HTTP on 127.0.0.1: the emulator for bodies with a
Content-Length, and a small stub for what the emulator never sends (chunked transfer encoding, a body that
stalls midway)."""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import urllib3

from together_provider.client import requests as api
from together_provider.client.errors import APITimeoutError, IncompleteDownloadError
from together_provider.hooks import transports
from together_provider.hooks.together import TogetherHook

from ..conftest import connection_uri_env

BODY = bytes(range(256)) * 2_000 + b"tail"  # 512,004 bytes: two full buffers and a short one


@pytest.fixture
def no_retry(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_retries=0))
    return TogetherHook()


def test_body_is_byte_identical_across_buffer_boundaries(no_retry, emu, tmp_path):
    size = 3 * transports._DOWNLOAD_CHUNK + 12_345
    made = emu.create_synthetic_file(size)
    target = no_retry.download_file(made["id"], tmp_path / "out.jsonl")
    assert Path(target).read_bytes() == emu.file_path(made["id"]).read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_cut_after_a_full_buffer_names_the_bytes_received(no_retry, emu, tmp_path):
    made = emu.create_synthetic_file(1_000_000)
    cut = transports._DOWNLOAD_CHUNK + 1_000
    emu.set_faults({"path": f"^/v1/files/{made['id']}/content$", "kind": "truncate", "truncate_at": cut})
    with pytest.raises(IncompleteDownloadError, match=f"received {cut} of 1000000 bytes"):
        no_retry.download_file(made["id"], tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


class _Stub(BaseHTTPRequestHandler):
    """GET /v1/files/{mode}/content: ``chunked`` (the whole BODY in odd-sized chunks), ``chunked-cut``
    (hangs up inside the second chunk) or ``stall`` (a Content-Length, half the body, then silence)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        mode = self.path.split("/")[3]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        if mode == "stall":
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY[: len(BODY) // 2])
            self.wfile.flush()
            time.sleep(2)
            self.close_connection = True
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        step = 100_003
        for start in range(0, len(BODY), step):
            piece = BODY[start : start + step]
            if mode == "chunked-cut" and start > 0:
                self.wfile.write(b"%x\r\n" % len(piece) + piece[:500])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def stub(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(url, max_retries=0, timeout=0.5))
    yield TogetherHook()
    server.shutdown()
    server.server_close()


def test_chunked_body_is_written_whole(stub, tmp_path):
    target = stub.download_file("chunked", tmp_path / "out.jsonl")
    assert Path(target).read_bytes() == BODY


def test_chunked_body_cut_midway_is_an_incomplete_download(stub, tmp_path):
    with pytest.raises(IncompleteDownloadError, match=r"connection lost after \d+ bytes \(IncompleteRead\)"):
        stub.download_file("chunked-cut", tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_body_that_stalls_midway_is_a_timeout(stub, tmp_path):
    with pytest.raises(APITimeoutError, match=r"no data for 0.5 s after \d+ bytes"):
        stub.download_file("stall", tmp_path / "out.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_a_body_not_on_a_socket_takes_urllib3s_stream(tmp_path):
    """An adapter whose raw body is not http.client's (a test double, say) still downloads."""
    response = requests.Response()
    response.status_code = 200
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(BODY), preload_content=False)
    request = api.download_file("file-x", str(tmp_path / "out.part"))
    assert transports._stream_to_file(response, request, 1.0) == len(BODY)
    assert (tmp_path / "out.part").read_bytes() == BODY
