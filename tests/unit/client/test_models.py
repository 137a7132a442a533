import json
import logging

import pendulum
import pytest

from together_provider.client.errors import InvalidResponseError, permanent_failure
from together_provider.client.models import (
    BatchJob,
    BatchStatus,
    CreatedBatch,
    TogetherFile,
    _parse_time,
    parse_batch_list,
    parse_file_list,
)
from together_provider.client.retry import RetryPolicy

FULL = {
    "id": "0a1b2c3d-0000-0000-0000-000000000001",
    "user_id": "user_1",
    "input_file_id": "file-in",
    "file_size_bytes": 1234,
    "status": "COMPLETED",
    "job_deadline": "2026-11-26T10:00:00Z",
    "created_at": "2026-11-25T10:00:00Z",
    "endpoint": "/v1/chat/completions",
    "progress": 100.0,
    "model_id": "meta-llama/Llama-3",
    "output_file_id": "file-out",
    "error_file_id": "file-err",
    "error": "",
    "completed_at": "2026-11-25T10:30:00.123456+00:00",
}


@pytest.mark.parametrize(
    ("raw", "status", "terminal", "success"),
    [
        ("VALIDATING", BatchStatus.VALIDATING, False, False),
        ("IN_PROGRESS", BatchStatus.IN_PROGRESS, False, False),
        ("COMPLETED", BatchStatus.COMPLETED, True, True),
        ("FAILED", BatchStatus.FAILED, True, False),
        ("EXPIRED", BatchStatus.EXPIRED, True, False),
        ("CANCELLED", BatchStatus.CANCELLED, True, False),
        ("CANCELING", BatchStatus.CANCELING, False, False),
        ("cancelling", BatchStatus.CANCELING, False, False),
        ("completed", BatchStatus.COMPLETED, True, True),
        ("FINALIZING", BatchStatus.UNKNOWN, False, False),
    ],
)
def test_status_table(raw, status, terminal, success):
    parsed = BatchStatus.parse(raw)
    assert parsed is status
    assert parsed.is_terminal is terminal
    assert parsed.is_success is success


def test_unknown_status_warns_with_value(caplog):
    with caplog.at_level(logging.WARNING):
        job = BatchJob.from_api({"id": "b1", "status": "FINALIZING"})
    assert job.status is BatchStatus.UNKNOWN
    assert not job.status.is_terminal and not job.status.is_success
    assert "FINALIZING" in caplog.text
    assert job.to_xcom()["status"] == "FINALIZING"


def test_full_batch_parses_every_field():
    job = BatchJob.from_api(FULL)
    assert job.status is BatchStatus.COMPLETED
    assert job.file_size_bytes == 1234
    assert job.output_file_id == "file-out" and job.error_file_id == "file-err"
    assert job.error is None  # empty string means no error
    assert job.created_at == pendulum.datetime(2026, 11, 25, 10, 0, 0)
    assert job.completed_at is not None and job.completed_at.microsecond == 123456
    xcom = job.to_xcom()
    assert json.loads(json.dumps(xcom)) == xcom
    assert xcom["created_at"] == "2026-11-25T10:00:00+00:00"


def test_minimal_and_unknown_fields_tolerated():
    job = BatchJob.from_api({"id": "b1", "status": "IN_PROGRESS", "brand_new_field": "x", "progress": None})
    assert job.output_file_id is None and job.progress is None and job.created_at is None
    assert job.extra == {"brand_new_field": "x"}
    assert "brand_new_field" not in job.to_xcom()


@pytest.mark.parametrize("model", [BatchJob, TogetherFile])
def test_unknown_fields_kept_only_few_small_and_flat(model):
    data = {"id": "b1", "status": "IN_PROGRESS", "flag": True, "count": 3, "ratio": 0.5, "note": None}
    data |= {"name": "n" * 256, "long": "x" * 257, "nested": {"x": 1}, "listed": [1, 2], "k" * 257: 1}
    data |= {f"field_{i:03d}": i for i in range(100)}
    extra = model.from_api(data).extra
    assert len(extra) == 32
    assert {"flag": True, "count": 3, "ratio": 0.5, "note": None, "name": "n" * 256}.items() <= extra.items()
    assert not {"long", "nested", "listed", "k" * 257} & extra.keys()


@pytest.mark.parametrize(
    ("raw", "expected"), [(42.5, 42.5), ("7", 7.0), (150, 100.0), (-1, 0.0), ("x", None)]
)
def test_progress_read_as_percentage(raw, expected):
    assert BatchJob.from_api({"id": "b", "status": "IN_PROGRESS", "progress": raw}).progress == expected


def test_bad_timestamp_becomes_none():
    assert (
        BatchJob.from_api({"id": "b", "status": "VALIDATING", "created_at": "yesterday-ish"}).created_at
        is None
    )


@pytest.mark.parametrize(
    "data", [{"status": "COMPLETED"}, {"id": "b1"}, [], "text", None, {"id": "b1", "status": ""}]
)
def test_batch_missing_required_fields_is_invalid_response(data):
    with pytest.raises(InvalidResponseError):
        BatchJob.from_api(data)


def test_create_envelope_and_warning():
    created = CreatedBatch.from_api({"job": FULL, "warning": "completion_window ignored"})
    assert created.job.id == FULL["id"] and created.warning == "completion_window ignored"


def test_create_envelope_bare_job_accepted():
    assert CreatedBatch.from_api(FULL).job.id == FULL["id"]


@pytest.mark.parametrize("data", [{"warning": "quota"}, {"job": {}}, {"job": None}])
def test_create_envelope_without_job_id_says_a_batch_may_exist(data):
    # The answer names no batch; it does not prove none was made. The error leaves the task's retry
    # to it (transient, never retried as a call), and that retry finds a batch by the run key.
    with pytest.raises(InvalidResponseError, match=r"names no batch .* one may have been created") as caught:
        CreatedBatch.from_api(data)
    assert caught.value.transient
    assert "no batch was created" not in str(caught.value)
    assert permanent_failure(caught.value) is None
    assert not RetryPolicy().is_retryable(caught.value, idempotent=False)


def test_file_object_with_spec_capitals_and_unix_time():
    f = TogetherFile.from_api(
        {
            "id": "file-1",
            "object": "file",
            "created_at": 1764064800,
            "filename": "in.jsonl",
            "bytes": 10,
            "purpose": "batch-api",
            "FileType": "jsonl",
            "Processed": True,
        }
    )
    assert f.file_type == "jsonl" and f.processed is True
    assert f.created_at == pendulum.from_timestamp(1764064800)
    assert f.to_xcom()["created_at"].startswith("2025-11-25T10:00:00")


def test_lists():
    assert [b.id for b in parse_batch_list([FULL, {"id": "b2", "status": "FAILED"}])] == [FULL["id"], "b2"]
    assert [f.id for f in parse_file_list({"data": [{"id": "f1"}]})] == ["f1"]
    with pytest.raises(InvalidResponseError):
        parse_file_list({"files": []})


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25T14:00:08.921007Z",
        "2026-11-25T14:00:08+02:00",
        "2026-11-25T14:00:08",
        "2026-11-25",
        "2026-11-25T14:00:08.123456789Z",
        "20261125T140008Z",
    ],
)
def test_timestamps_read_as_pendulum_reads_them(text):
    """The fast ISO path and pendulum.parse (its fallback) must agree, time zone included."""
    parsed = _parse_time(text)
    assert isinstance(parsed, pendulum.DateTime)
    assert parsed == pendulum.parse(text)
    assert parsed.utcoffset() == pendulum.parse(text).utcoffset()
