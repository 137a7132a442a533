"""A landed row as typed columns (client/table.py): what each column takes out of the answer, and the way
back to the row, exact, for every kind of row."""

from __future__ import annotations

import json

import pytest

from together_provider.client.results import result_record
from together_provider.client.table import (
    COLUMNS,
    NAMES,
    checked_format,
    finish_reason_of,
    json_content,
    project,
    row_of,
    text_of,
)


def chat(content, finish="stop"):
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "m/chat",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
    }


def output_line(custom_id, body, status_code=200):
    return json.dumps({"custom_id": custom_id, "response": {"status_code": status_code, "body": body}})


def columns(row):
    return dict(zip(NAMES, project(row), strict=True))


def test_a_chat_answer_s_columns():
    row = result_record(output_line("a", chat("Hello")), file_id="f", lineno=1)
    row.update(round=2, batch_id="b-1")
    got = columns(row)
    assert got == {
        "custom_id": "a",
        "status": "succeeded",
        "round": 2,
        "batch_id": "b-1",
        "model": "m/chat",
        "content": "Hello",
        "content_json": None,
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
        "error_code": None,
        "error_message": None,
        "response": json.dumps(chat("Hello"), separators=(",", ":")),
        "error": None,
    }


def test_structured_output_is_kept_as_json_and_plain_text_is_not():
    assert (
        columns({"custom_id": "a", "status": "succeeded", "response": chat(' {"x": [1, 2]}\n')})[
            "content_json"
        ]
        == '{"x": [1, 2]}'
    )
    for text in ("42", '"quoted"', "true", "{not json", "The answer is {x}", "", None):
        assert json_content(text) is None, text
    assert json_content("[1, 2]") == "[1, 2]"


@pytest.mark.parametrize(
    ("body", "text", "finish"),
    [
        ({"choices": [{"index": 0, "text": "completed", "finish_reason": "length"}]}, "completed", "length"),
        ({"text": "a transcript"}, "a transcript", None),
        (
            {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "image"}]}}]},
            "a",
            None,
        ),
        (
            {"choices": [{"message": {"content": None, "tool_calls": []}, "finish_reason": "tool_calls"}]},
            None,
            "tool_calls",
        ),
        ({"choices": []}, None, None),
        ("not an object", None, None),
    ],
)
def test_the_text_of_every_endpoint_s_answer(body, text, finish):
    assert text_of(body) == text
    assert finish_reason_of(body) == finish


def test_an_error_s_code_and_message_and_a_missing_row():
    errored = result_record(
        json.dumps({"custom_id": "e", "error": {"message": "rate limited", "code": 429}}),
        file_id="f",
        lineno=1,
    )
    got = columns(errored)
    assert (got["error_code"], got["error_message"], got["round"], got["content"]) == (
        "429",
        "rate limited",
        0,
        None,
    )
    assert got["prompt_tokens"] is None and got["response"] is None
    answered_badly = result_record(
        output_line("x", {"error": {"message": "nope", "type": "invalid_request_error"}}, status_code=400),
        file_id="f",
        lineno=1,
    )
    assert columns(answered_badly)["error_code"] == "400"
    named = {
        "custom_id": "n",
        "status": "errored",
        "error": {"message": "x", "code": "context_length_exceeded"},
    }
    assert columns(named)["error_code"] == "context_length_exceeded"


@pytest.mark.parametrize(
    "row",
    [
        {**result_record(output_line("a", chat("Hi")), file_id="f", lineno=1), "round": 0, "batch_id": "b"},
        {
            **result_record(
                output_line("x", {"error": {"message": "busy", "type": "server_error"}}, status_code=503),
                file_id="f",
                lineno=1,
            ),
            "round": 1,
            "batch_id": "b2",
        },
        {
            "custom_id": "m",
            "status": "missing",
            "response": None,
            "error": None,
            "usage": None,
            "model": "m/x",
            "round": 3,
            "batch_id": "b3",
        },
        {
            **result_record(output_line("t", {"text": "words", "model": "m/audio"}), file_id="f", lineno=1),
            "round": 0,
            "batch_id": "b",
        },
    ],
)
def test_a_table_row_gives_back_the_row_exactly(row):
    back = row_of(columns(row))
    assert back == row
    assert list(back) == ["custom_id", "status", "response", "error", "usage", "model", "round", "batch_id"]


def test_a_partial_read_gives_the_fields_it_holds():
    row = {**result_record(output_line("a", chat("Hi")), file_id="f", lineno=1), "round": 0, "batch_id": "b"}
    values = {
        name: value for name, value in columns(row).items() if name in ("status", "model", "total_tokens")
    }
    back = row_of(values)
    assert back["status"] == "succeeded" and back["model"] == "m/chat"
    assert back["usage"] == {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 7}
    assert back["response"] is None


@pytest.mark.parametrize("good", ["jsonl", "parquet", " Parquet "])
def test_result_format_choices(good):
    assert checked_format(good) == good.strip().lower()


@pytest.mark.parametrize("bad", ["csv", "", None, 1])
def test_a_bad_result_format_names_the_field_and_the_choices(bad):
    with pytest.raises(ValueError, match=r"result_format=.*'jsonl'.*'parquet'.*\[parquet\] extra"):
        checked_format(bad)


def test_every_column_has_a_type_the_writer_knows_and_a_description():
    assert len(set(NAMES)) == len(COLUMNS)
    assert {column.type for column in COLUMNS} <= {"string", "int32", "int64"}
    assert all(column.description for column in COLUMNS)
