"""Bad input refused clearly: one row per case, the exact error a user sees, and no retry storm.

The manual's troubleshooting table (docs/troubleshooting.md) is this table; keep the two in step."""

from __future__ import annotations

import json

import pytest

from together_provider._compat import AirflowFailException
from together_provider.client import jsonl
from together_provider.operators.batch import (
    CancelBatchOperator,
    DownloadBatchFileOperator,
    GetBatchOperator,
    SubmitBatchOperator,
)
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.triggers.batch import BatchStatusTrigger

from ..conftest import connection_uri_env
from ..helpers import RecordingTI

GOOD = {"custom_id": "a", "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}


def lines(*records):
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)


def submit(tmp_path, content, name="in.jsonl", **kwargs):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    return SubmitBatchOperator(task_id="submit", input_file_path=str(path), **kwargs)


def big_file(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        handle.truncate(100 * 1024 * 1024 + 1)
    return SubmitBatchOperator(task_id="submit", input_file_path=str(path))


def many_lines(tmp_path):
    text = "".join(json.dumps({**GOOD, "custom_id": f"r{i}"}) + "\n" for i in range(jsonl.MAX_LINES + 1))
    return submit(tmp_path, text)


# case, operator factory, the message a user sees (regex), requests the emulator may see
ROWS = [
    (
        "empty batch id",
        lambda t: GetBatchOperator(task_id="g", batch_id=""),
        r"^batch_id must be a non-empty string, got ''$",
        0,
    ),
    (
        "whitespace batch id",
        lambda t: GetBatchOperator(task_id="g", batch_id="  "),
        r"^batch_id must be a non-empty string, got '  '$",
        0,
    ),
    (
        "batch id of dots",
        lambda t: CancelBatchOperator(task_id="c", batch_id=".."),
        r"^batch_id is only dots, which a URL would read as a relative path, not an id: "
        r"give a Together id \(a batch's UUID, or 'file-\.\.\.'\), got '\.\.'$",
        0,
    ),
    (
        "batch id with a line break",
        lambda t: GetBatchOperator(task_id="g", batch_id="b-1\nINFO - forged line"),
        r"^batch_id holds control characters \(such as a line break\), which no Together id has: "
        r"give a Together id .*, got 'b-1\\nINFO - forged line'$",
        0,
    ),
    (
        "file id of dots",
        lambda t: DownloadBatchFileOperator(task_id="d", file_id=".", path=str(t / "out.jsonl")),
        r"^file_id is only dots",
        0,
    ),
    (
        "unknown batch (404)",
        lambda t: GetBatchOperator(task_id="g", batch_id="no-such-batch"),
        r"^get batch no-such-batch: Together API answered 404: "
        r".*\(check the id: it does not exist for this API key\)",
        1,
    ),
    (
        "input file missing",
        lambda t: submit(t, None),
        r"in\.jsonl: file not found; check the path \(it is read on the worker\)$",
        0,
    ),
    (
        "input file empty",
        lambda t: submit(t, ""),
        r"in\.jsonl: file is empty; a batch needs at least one request line$",
        0,
    ),
    (
        "not JSONL (name)",
        lambda t: submit(t, lines(GOOD), name="in.csv"),
        r"in\.csv: a batch input file must be JSON Lines with a name ending in '\.jsonl'$",
        0,
    ),
    (
        "not JSONL (content)",
        lambda t: submit(t, "custom_id,body\na,b\n"),
        r"in\.jsonl, line 1: line is not valid JSON \(Expecting value at column 1\)$",
        0,
    ),
    (
        "line not JSON",
        lambda t: submit(t, lines(GOOD, '{"custom_id": "b",')),
        r"in\.jsonl, line 2: line is not valid JSON",
        0,
    ),
    (
        "duplicate custom_id",
        lambda t: submit(t, lines(GOOD, GOOD)),
        r"in\.jsonl, line 2: 'custom_id' 'a' is used twice; each request needs a unique id$",
        0,
    ),
    (
        "over-long custom_id",
        lambda t: submit(t, lines({**GOOD, "custom_id": "x" * 65})),
        r"line 1: 'custom_id' is 65 characters, over the limit of 64$",
        0,
    ),
    (
        "missing body",
        lambda t: submit(t, lines({"custom_id": "a"})),
        r"line 1: 'body' is missing; put the request under 'body'$",
        0,
    ),
    (
        "missing model",
        lambda t: submit(t, lines({"custom_id": "a", "body": {"messages": []}})),
        r"line 1: 'body\.model' is missing or empty; name the model for this request$",
        0,
    ),
    (
        "model not a string",
        lambda t: submit(t, lines({"custom_id": "a", "body": {"model": 123, "messages": []}})),
        r"line 1: 'body\.model' must be a string naming the model \(got 123\)$",
        0,
    ),
    (
        "over 50,000 lines",
        many_lines,
        r"line 50001: more than 50,000 requests; "
        r"the Batch API takes at most 50,000 per batch, split the file$",
        0,
    ),
    (
        "over 100 MB",
        big_file,
        r"file is 104,857,601 bytes, over the Batch API limit of 104,857,600 bytes \(100 MB\); split it",
        0,
    ),
    (
        "audio line without method or URL",
        lambda t: submit(
            t,
            lines({"custom_id": "a", "body": {"model": "openai/whisper-large-v3", "file": "a.wav"}}),
            endpoint="/v1/audio/transcriptions",
        ),
        r"in\.jsonl, line 1: 'method' must be \"FILE\" for /v1/audio/transcriptions \(it is missing\); "
        r'add "method": "FILE" to the line$',
        0,
    ),
    (
        "unsupported endpoint",
        lambda t: submit(t, lines(GOOD), endpoint="/v1/embeddings"),
        r"^endpoint '/v1/embeddings' is not supported by the Batch API; use one of",
        0,
    ),
]


@pytest.mark.parametrize(("case", "make", "message", "requests"), ROWS, ids=[r[0] for r in ROWS])
def test_refused_clearly(case, make, message, requests, together_conn, emu, tmp_path):
    op = make(tmp_path)
    with pytest.raises(AirflowFailException, match=message):
        op.execute({"ti": RecordingTI()})
    assert len(emu.requests_log()) == requests


@pytest.mark.parametrize(
    ("case", "status", "message"),
    [
        (
            "wrong key (401)",
            401,
            r"answered 401: .*\(check the API key in the connection's password field or TOGETHER_API_KEY\)",
        ),
        ("forbidden (403)", 403, r"answered 403: .*\(the API key is valid but may not use this resource\)"),
        (
            "out of credits (402)",
            402,
            r"answered 402: .*\(the Together account is out of credits; add credits",
        ),
    ],
)
def test_account_errors_fail_at_once(case, status, message, together_conn, emu, tmp_path):
    emu.set_faults(
        {"method": "POST", "path": "^/v1/batches$", "kind": "status", "status": status, "times": None}
    )
    with pytest.raises(AirflowFailException, match=message):
        submit(tmp_path, lines(GOOD)).execute({"ti": RecordingTI()})
    assert len(emu.requests_log(method="POST", path="/v1/batches")) == 1


def test_wrong_key_for_real(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, key="wrong"))
    with pytest.raises(AirflowFailException, match=r"^get batch b: Together API answered 401"):
        GetBatchOperator(task_id="g", batch_id="b").execute({"ti": RecordingTI()})
    assert len(emu.requests_log()) == 1


def test_batch_missing_required_fields(together_conn, emu):
    emu.set_faults(
        {"path": "^/v1/batches/b1$", "kind": "status", "status": 200, "body": {"id": "b1"}, "times": None}
    )
    with pytest.raises(AirflowFailException, match=r"Together's batch object b1 has no 'status'"):
        GetBatchOperator(task_id="g", batch_id="b1").execute({"ti": RecordingTI()})
    assert len(emu.requests_log()) == 1


def test_unknown_status_keeps_waiting_with_a_warning(together_conn, emu, capsys, caplog):
    weird = {"id": "b2", "status": "REVIEWING", "progress": 10}
    emu.set_faults(
        {"path": "^/v1/batches/b2$", "kind": "status", "status": 200, "body": weird, "times": None}
    )
    ti = RecordingTI()
    got = GetBatchOperator(task_id="g", batch_id="b2").execute({"ti": ti})
    assert got["status"] == "REVIEWING" and ti.xcoms["status"] == "REVIEWING"
    sensor = BatchCompletionSensor(task_id="s", batch_id="b2", deferrable=False)
    assert sensor.poke({"ti": ti}) is False
    assert "status this provider does not know: 'REVIEWING'" in caplog.text + capsys.readouterr().out


@pytest.mark.parametrize("interval", [0, -5])
def test_poll_interval_must_be_positive(interval):
    with pytest.raises(ValueError, match=rf"^poll_interval must be greater than 0 seconds, got {interval}$"):
        BatchCompletionSensor(task_id="s", batch_id="b", poll_interval=interval)
    with pytest.raises(ValueError, match="poll_interval must be greater than 0 seconds"):
        BatchStatusTrigger(batch_id="b", poll_interval=interval)
