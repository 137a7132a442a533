"""The Parquet table (tasks/parquet.py) without a server: row groups bounded by rows and by bytes, the
typed schema, rows read back exactly (all columns or some), and files it cannot read named."""

from __future__ import annotations

import io
import json

import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (the parquet extra brings it)")
pq = pytest.importorskip("pyarrow.parquet")

from together_provider.client import table  # noqa: E402
from together_provider.tasks import parquet  # noqa: E402


def chat_row(i, text="hello"):
    body = {
        "model": "m/chat",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": i, "completion_tokens": 2, "total_tokens": i + 2},
    }
    usage = dict(body["usage"])
    return {
        "custom_id": f"r{i}",
        "status": "succeeded",
        "response": body,
        "error": None,
        "usage": usage,
        "model": "m/chat",
        "round": 0,
        "batch_id": "b-1",
    }


def write(rows, **limits):
    sink = io.BytesIO()
    writer = parquet.ParquetRowWriter(sink, **limits)
    for row in rows:
        writer.write(row)
    writer.close()
    assert writer.written == len(rows)
    sink.seek(0)
    return sink


def test_a_row_group_at_most_every_n_rows():
    sink = write([chat_row(i) for i in range(7)], rows_per_group=3)
    meta = pq.ParquetFile(sink).metadata
    assert meta.num_rows == 7
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [3, 3, 1]


def test_a_row_group_also_ends_at_its_bytes():
    big = "x" * 1000
    sink = write([chat_row(i, big) for i in range(5)], rows_per_group=1000, bytes_per_group=2500)
    meta = pq.ParquetFile(sink).metadata
    # Each row holds its text twice (content and the body's JSON): two rows pass 2,500 bytes.
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [2, 2, 1]


def test_the_schema_is_typed_and_described():
    sink = write([chat_row(1)])
    schema = pq.read_schema(sink)
    assert schema.names == list(table.NAMES)
    assert schema.field("round").type == pa.int32()
    assert schema.field("total_tokens").type == pa.int64()
    assert schema.field("content").type == pa.string()
    assert not schema.field("custom_id").nullable and schema.field("content_json").nullable
    assert schema.field("status").metadata[b"description"] == b"succeeded, errored or missing"


def test_rows_read_back_exactly_and_a_partial_read_gives_what_it_asked_for():
    missing = {
        "custom_id": "gone",
        "status": "missing",
        "response": None,
        "error": None,
        "usage": None,
        "model": "m/x",
        "round": 1,
        "batch_id": "b-2",
    }
    errored = {
        "custom_id": "e",
        "status": "errored",
        "response": None,
        "error": {"message": "busy", "code": 503, "body": {"error": {"type": "server_error"}}},
        "usage": None,
        "model": None,
        "round": 0,
        "batch_id": "b-1",
    }
    rows = [chat_row(1, '{"a": 1}'), errored, missing]
    sink = write(rows, rows_per_group=2)
    assert list(parquet.iter_rows(sink, where="x.parquet")) == rows
    light = list(parquet.iter_rows(sink, where="x.parquet", columns=table.TALLY_COLUMNS))
    assert [(r["status"], r["model"], r["usage"]) for r in light] == [
        ("succeeded", "m/chat", {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}),
        ("errored", None, None),
        ("missing", "m/x", None),
    ]
    got = pq.read_table(sink).to_pylist()[0]
    assert got["content_json"] == '{"a": 1}' and json.loads(got["response"]) == rows[0]["response"]


def test_a_file_that_is_not_a_table_of_ours_is_named():
    with pytest.raises(ValueError, match=r"result_path='rows\.parquet' is not a Parquet file"):
        list(parquet.iter_rows(io.BytesIO(b'{"custom_id": "a"}\n'), where="rows.parquet"))
    other = io.BytesIO()
    pq.write_table(pa.table({"custom_id": ["a"]}), other)
    other.seek(0)
    with pytest.raises(ValueError, match=r"without the columns \['status'"):
        list(parquet.iter_rows(other, where="rows.parquet"))


def test_an_old_pyarrow_is_refused_naming_the_extra(monkeypatch):
    monkeypatch.setattr(parquet.importlib.metadata, "version", lambda name: "15.0.2")
    with pytest.raises(
        ValueError, match=r"needs pyarrow 16\.1 or later, which is not \(15\.0\.2 is installed\)"
    ):
        parquet.check_installed()
    monkeypatch.setattr(pa, "__version__", "12.0.0")
    with pytest.raises(ValueError, match=r"airflow-provider-together\[parquet\]"):
        parquet.ParquetRowWriter(io.BytesIO())
