"""Issue 22, points 1, 2, 8 and 9 against a hostile server: ids that would leave their path segment or
forge a log line, a key echoed back in bodies and headers, and a create answered without a batch."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from together_provider._compat import AirflowFailException
from together_provider.client.errors import APIStatusError, InvalidResponseError, permanent_failure
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import CancelBatchOperator, GetBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.triggers.batch import BatchStatusTrigger

from ..helpers import RecordingTI
from .conftest import SECRET_KEY
from .hostile import BATCH, reply

DOT_IDS = [".", "..", "...", " .. "]
FORGING_IDS = ["b-1\r\nINFO - forged: batch b-2 COMPLETED", "b-1\n2", "b-1\x1b[2J", "b\u2028-1"]


def ok(request, conn):
    reply(conn, 200, BATCH)


def sync_calls(hook, bad):
    return [
        lambda: hook.get_batch(bad),
        lambda: hook.cancel_batch(bad),
        lambda: hook.get_file(bad),
        lambda: hook.delete_file(bad),
        lambda: hook.download_file(bad, "/tmp/never-written-by-this-test"),
        lambda: hook.create_batch(bad),
    ]


def async_calls(hook, bad):
    return [
        lambda: hook.aget_batch(bad),
        lambda: hook.acancel_batch(bad),
        lambda: hook.aget_file(bad),
    ]


@pytest.mark.parametrize("bad", DOT_IDS + FORGING_IDS)
def test_bad_ids_never_reach_the_server_sync(bad, hostile, hook):
    server = hostile(ok)
    for call in sync_calls(hook, bad):
        with pytest.raises(
            ValueError, match=r"(batch_id|file_id|input_file_id) (is only dots|holds control)"
        ):
            call()
    assert server.seen == []


@pytest.mark.parametrize("bad", DOT_IDS + FORGING_IDS)
async def test_bad_ids_never_reach_the_server_async(bad, hostile):
    server = hostile(ok)
    hook = TogetherHook()
    try:
        for call in async_calls(hook, bad):
            with pytest.raises(ValueError, match=r"(batch_id|file_id) (is only dots|holds control)"):
                await call()
    finally:
        await hook.aclose()
    assert server.seen == []


def test_an_id_is_exactly_one_path_segment(hostile, hook):
    server = hostile(ok)
    hook.get_batch("../files/x")
    hook.cancel_batch("a/..")
    assert [seen.path for seen in server.seen] == [
        "/v1/batches/..%2Ffiles%2Fx",
        "/v1/batches/a%2F../cancel",
    ]


@pytest.mark.parametrize(
    ("operator", "words"),
    [
        (lambda: CancelBatchOperator(task_id="c", batch_id=".."), "batch_id is only dots"),
        (lambda: GetBatchOperator(task_id="g", batch_id="b\r\nforged"), "batch_id holds control characters"),
        (lambda: BatchCompletionSensor(task_id="s", batch_id=".", deferrable=False), "batch_id is only dots"),
        (
            lambda: BatchCompletionSensor(task_id="s", batch_id=["b-1", ".."], deferrable=True),
            r"batch_id\[1\] is only dots",
        ),
    ],
)
def test_tasks_fail_at_once_on_bad_ids(operator, words, hostile):
    server = hostile(ok)
    with pytest.raises(AirflowFailException, match=words) as failed:
        operator().execute({"ti": RecordingTI()})
    assert "\n" not in str(failed.value) and "\r" not in str(failed.value)
    assert server.seen == []


def test_a_trigger_refuses_a_bad_id():
    with pytest.raises(ValueError, match="batch_id is only dots"):
        BatchStatusTrigger(batch_id="..")


@pytest.mark.parametrize(
    "answer",
    [
        {"id": "..", "status": "IN_PROGRESS"},
        {"id": "b-1\r\nINFO forged", "status": "IN_PROGRESS"},
        {"id": "b-1", "status": "COMPLETED", "output_file_id": "."},
        {"id": "b-1", "status": "COMPLETED", "error_file_id": "file-1\nforged"},
    ],
)
def test_an_answer_with_ids_that_cannot_be_ids_is_refused(answer, hostile, hook):
    hostile(lambda request, conn: reply(conn, 200, json.dumps(answer).encode()))
    with pytest.raises(InvalidResponseError, match="cannot be an id") as refused:
        hook.get_batch("b-1")
    assert "\n" not in str(refused.value) and "\r" not in str(refused.value)


def test_server_text_reaches_logs_on_one_line(hostile, hook, caplog):
    answer = {"id": "b-1", "status": "FAILED\r\nINFO forged", "error": "bad\r\nINFO - forged: all good"}
    hostile(lambda request, conn: reply(conn, 200, json.dumps(answer).encode()))
    batch = hook.get_batch("b-1")
    assert "\n" not in batch.error and "\r" not in batch.error
    assert "\n" not in batch.raw_status


# ---- the key echoed back ----------------------------------------------------------------------------


def echo_401(request, conn):
    reply(
        conn,
        401,
        json.dumps({"error": f"Incorrect API key provided: {request.header('authorization')}"}).encode(),
    )


def echo_proxy_page(request, conn):
    page = f"<html><body>400 Bad Request<pre>{request.header('authorization')}</pre></body></html>"
    reply(conn, 400, page.encode(), content_type="text/plain")


def echo_headers(request, conn):
    headers = [("X-Request-Id", SECRET_KEY), ("X-Echo", request.header("authorization"))]
    reply(conn, 403, b'{"error": {"message": "denied", "code": "' + SECRET_KEY.encode() + b'"}}', headers)


def echo_in_batch(request, conn):
    answer = {"id": "b-1", "status": "FAILED", "error": f"upstream said: key={SECRET_KEY}"}
    reply(conn, 200, json.dumps(answer).encode())


def echo_not_json(request, conn):
    reply(conn, 200, f"oops {SECRET_KEY} oops".encode(), content_type="text/plain")


ECHOES = [echo_401, echo_proxy_page, echo_headers, echo_not_json]


def no_secret(*texts: object) -> None:
    for text in texts:
        assert SECRET_KEY not in str(text)
        assert "Bearer sk-" not in str(text)


@pytest.mark.parametrize("handler", ECHOES, ids=lambda h: h.__name__)
def test_an_echoed_key_never_reaches_an_exception_sync(handler, hostile, hook, caplog):
    hostile(handler)
    with caplog.at_level(logging.DEBUG), pytest.raises((APIStatusError, InvalidResponseError)) as raised:
        hook.get_batch("b-1")
    error = raised.value
    no_secret(error, repr(error), getattr(error, "headers", {}), getattr(error, "request_id", ""))
    no_secret(permanent_failure(error), caplog.text)


@pytest.mark.parametrize("handler", ECHOES, ids=lambda h: h.__name__)
async def test_an_echoed_key_never_reaches_an_exception_async(handler, hostile):
    hostile(handler)
    hook = TogetherHook()
    try:
        with pytest.raises((APIStatusError, InvalidResponseError)) as raised:
            await hook.aget_batch("b-1")
    finally:
        await hook.aclose()
    no_secret(raised.value, getattr(raised.value, "headers", {}))


def test_an_echoed_key_never_reaches_a_model(hostile, hook):
    hostile(echo_in_batch)
    batch = hook.get_batch("b-1")
    no_secret(batch.error, batch.to_xcom())
    assert "[redacted]" in batch.error


@pytest.mark.parametrize("handler", [echo_401, echo_headers, echo_in_batch], ids=lambda h: h.__name__)
def test_an_echoed_key_never_reaches_the_trigger_event(handler, hostile):
    # The event is what Airflow stores in the metadata DB (next_kwargs) and shows the task.
    hostile(handler)

    async def first_event():
        trigger = BatchStatusTrigger(batch_id="b-1", poll_interval=0.01, max_consecutive_failures=1)
        async for event in trigger.run():
            return event.payload
        return None

    payload = asyncio.run(first_event())
    assert payload is not None and payload.get("batch_id") == "b-1"
    no_secret(json.dumps(payload))


def test_an_echoed_key_never_reaches_the_task(hostile):
    hostile(echo_401)
    with pytest.raises(AirflowFailException) as failed:
        GetBatchOperator(task_id="g", batch_id="b-1").execute({"ti": RecordingTI()})
    no_secret(failed.value)
    assert "Bearer [redacted]" in str(failed.value)


# ---- a create answered without a batch --------------------------------------------------------------


def test_a_create_answered_without_an_id_says_a_batch_may_exist(hostile, hook):
    server = hostile(lambda request, conn: reply(conn, 200, b'{"warning": "slow down"}'))
    with pytest.raises(InvalidResponseError, match=r"names no batch .* one may have been created") as raised:
        hook.create_batch("file-1")
    assert "no batch was created" not in str(raised.value)
    # Sent once (a second create could pay twice); the task's retry is left to look for the batch.
    assert [seen.method for seen in server.seen] == ["POST"]
    assert permanent_failure(raised.value) is None


def test_an_error_answer_reaches_the_message_on_one_printable_line(hostile, hook):
    body = json.dumps({"error": "denied\r\nINFO - forged: batch b-2 COMPLETED\x1b[2J"}).encode()
    hostile(lambda request, conn: reply(conn, 403, body, [("X-Request-Id", "req-1\x1b[31mred")]))
    with pytest.raises(APIStatusError) as raised:
        hook.get_batch("b-1")
    text = str(raised.value)
    assert "denied INFO - forged: batch b-2 COMPLETED" in text
    assert not any(not char.isprintable() for char in text)
    assert raised.value.request_id == "req-1 [31mred"
