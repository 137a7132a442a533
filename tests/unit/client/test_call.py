"""The shared call flow, driven with scripted replies: what is sent, how often, and how long it waits."""

import asyncio

import pytest

from together_provider.client import requests as api
from together_provider.client.call import run_async, run_sync
from together_provider.client.errors import (
    APIConnectionError,
    AuthenticationError,
    IncompleteDownloadError,
    InvalidResponseError,
    NotFoundError,
    ServerError,
)
from together_provider.client.requests import RawResponse
from together_provider.client.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, jitter=0.0)
BATCH = b'{"id": "b1", "status": "IN_PROGRESS", "progress": 10}'


class Script:
    def __init__(self, *replies):
        self.replies = list(replies)
        self.sent = []
        self.slept = []

    def send(self, request):
        self.sent.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def asend(self, request):
        return self.send(request)

    def sleep(self, seconds):
        self.slept.append(seconds)

    async def asleep(self, seconds):
        self.slept.append(seconds)


def ok(body=BATCH, status=200, headers=None):
    return RawResponse(status, headers or {}, body)


def test_success_first_try():
    script = Script(ok())
    job = run_sync(api.get_batch("b1"), POLICY, script.send, script.sleep)
    assert job.id == "b1" and script.slept == [] and len(script.sent) == 1


def test_transient_errors_ridden_out_with_server_hints():
    script = Script(
        ok(b'{"error": "slow"}', 429, {"Retry-After": "2"}),
        APIConnectionError("reset"),
        ok(b"<html>bad gateway</html>", 502),
        ok(),
    )
    job = run_sync(api.get_batch("b1"), POLICY, script.send, script.sleep)
    assert job.status.value == "IN_PROGRESS"
    assert script.slept == [2.0, 1.0, 2.0]


def test_gives_up_after_max_attempts_with_last_error():
    script = Script(*[ok(b'{"error": "down"}', 503)] * 4)
    with pytest.raises(ServerError, match="down"):
        run_sync(api.get_batch("b1"), POLICY, script.send, script.sleep)
    assert len(script.sent) == 4 and len(script.slept) == 3


@pytest.mark.parametrize(("status", "cls"), [(401, AuthenticationError), (404, NotFoundError)])
def test_caller_errors_fail_at_once(status, cls):
    script = Script(ok(b'{"error": "no"}', status))
    with pytest.raises(cls) as info:
        run_sync(api.get_batch("b1"), POLICY, script.send, script.sleep)
    assert len(script.sent) == 1 and script.slept == []
    assert "get batch b1" in str(info.value)


def test_create_not_retried_after_server_error():
    script = Script(ok(b'{"error": "boom"}', 500))
    with pytest.raises(ServerError):
        run_sync(api.create_batch("file-1"), POLICY, script.send, script.sleep)
    assert len(script.sent) == 1


def test_create_retried_when_never_sent_and_on_429():
    created = b'{"job": {"id": "b9", "status": "VALIDATING"}}'
    script = Script(
        APIConnectionError("refused", request_sent=False),
        ok(b'{"error": "rate"}', 429, {"retry-after-ms": "250"}),
        ok(created, 201),
    )
    created_batch = run_sync(api.create_batch("file-1"), POLICY, script.send, script.sleep)
    assert created_batch.job.id == "b9" and script.slept == [0.5, 0.25]


def test_create_with_garbled_body_not_retried():
    script = Script(ok(b'{"job": {"id": "b9", "sta', 201))
    with pytest.raises(InvalidResponseError):
        run_sync(api.create_batch("file-1"), POLICY, script.send, script.sleep)
    assert len(script.sent) == 1


def test_malformed_read_body_retried():
    script = Script(ok(b"{not json"), ok())
    assert run_sync(api.get_batch("b1"), POLICY, script.send, script.sleep).id == "b1"


def test_truncated_download_detected_and_retried(tmp_path):
    target = tmp_path / "out.part"
    script = Script(
        RawResponse(200, {"Content-Length": "100"}, b"", bytes_written=40),
        RawResponse(200, {"Content-Length": "100"}, b"", bytes_written=100),
    )
    assert run_sync(api.download_file("file-1", str(target)), POLICY, script.send, script.sleep) == 100
    assert len(script.sent) == 2


def test_truncated_download_gives_up():
    script = Script(*[RawResponse(200, {"Content-Length": "100"}, b"", bytes_written=1)] * 4)
    with pytest.raises(IncompleteDownloadError, match="1 of 100"):
        run_sync(api.download_file("file-1", "/tmp/x"), POLICY, script.send, script.sleep)


def test_async_driver_makes_the_same_decisions():
    script = Script(ok(b'{"error": "slow"}', 429, {"Retry-After": "1"}), ok())
    job = asyncio.run(run_async(api.get_batch("b1"), POLICY, script.asend, script.asleep))
    assert job.id == "b1" and script.slept == [1.0]


def test_upload_start_reads_redirect_and_conflict():
    redirect = RawResponse(302, {"Location": "http://h/put", "X-Together-File-Id": "file-7"}, b"")
    target = run_sync(api.start_upload("a.jsonl", checksum="c"), POLICY, Script(redirect).send)
    assert (target.file_id, target.url, target.already_uploaded) == ("file-7", "http://h/put", False)
    conflict = RawResponse(409, {}, b'{"file_id": "file-3"}')
    target = run_sync(api.start_upload("a.jsonl", checksum="c"), POLICY, Script(conflict).send)
    assert target.already_uploaded and target.file_id == "file-3"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: api.get_batch(""), "batch_id must be a non-empty string"),
        (lambda: api.get_batch("   "), "batch_id must be a non-empty string"),
        (lambda: api.cancel_batch(None), "batch_id must be a non-empty string"),
        (lambda: api.create_batch("f", "/v1/embeddings"), "not supported by the Batch API"),
        (lambda: api.create_batch(""), "input_file_id must be a non-empty string"),
        (lambda: api.start_upload("data.txt", checksum="c"), "must end in one of"),
    ],
)
def test_bad_arguments_refused_before_sending(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_ids_are_quoted_into_paths():
    assert api.get_batch("a/b c").path == "/v1/batches/a%2Fb%20c"
