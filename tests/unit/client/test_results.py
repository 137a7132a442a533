"""The no-I/O results core: lines into records, the merge with the input's ids, tally, manifest, decision."""

from __future__ import annotations

import json

import pytest

from together_provider.client.errors import InvalidResponseError, permanent_failure
from together_provider.client.results import (
    Tally,
    build_manifest,
    checked_min_success_ratio,
    input_request,
    merge,
    request_failure,
    result_record,
    success_ratio,
    usage_of,
)


def answer(custom_id, *, prompt=3, completion=5, model="m/chat", status_code=200):
    body = {
        "id": f"c-{custom_id}",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"hi {custom_id}"}}],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return json.dumps({"custom_id": custom_id, "response": {"status_code": status_code, "body": body}}) + "\n"


def failed(custom_id, message="bad request", code=400):
    return json.dumps({"custom_id": custom_id, "error": {"message": message, "code": code}}) + "\n"


def asked(custom_id, model="m/chat"):
    body = {"model": model, "messages": [{"role": "user", "content": "q"}]}
    return json.dumps({"custom_id": custom_id, "body": body}).encode() + b"\n"


def test_an_output_line_is_a_succeeded_record_with_usage_and_model():
    rec = result_record(answer("a", prompt=4, completion=6).encode(), file_id="file-out", lineno=1)
    assert rec is not None
    assert rec["custom_id"] == "a" and rec["status"] == "succeeded" and rec["error"] is None
    assert rec["response"]["choices"][0]["message"]["content"] == "hi a"
    assert rec["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    assert rec["model"] == "m/chat"


def test_an_error_line_is_an_errored_record():
    rec = result_record(failed("b", "too long", 422), file_id="file-err", lineno=3)
    assert rec == {
        "custom_id": "b",
        "status": "errored",
        "response": None,
        "error": {"message": "too long", "code": 422},
        "usage": None,
        "model": None,
    }


def test_an_output_line_with_a_non_2xx_status_is_errored_and_keeps_its_body():
    line = json.dumps(
        {"custom_id": "c", "response": {"status_code": 500, "body": {"error": {"message": "overloaded"}}}}
    )
    rec = result_record(line, file_id="file-out", lineno=1)
    assert rec is not None and rec["status"] == "errored" and rec["response"] is None
    assert rec["error"] == {
        "message": "overloaded",
        "code": 500,
        "body": {"error": {"message": "overloaded"}},
    }


def test_an_answer_without_usage_has_none():
    line = json.dumps({"custom_id": "t", "response": {"status_code": 200, "body": {"text": "said"}}})
    rec = result_record(line, file_id="f", lineno=1)
    assert rec is not None and rec["status"] == "succeeded" and rec["usage"] is None and rec["model"] is None


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (
            {"prompt_tokens": 2, "completion_tokens": 3},
            {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5},
        ),
        ({"total_tokens": 7}, {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 7}),
        ({"prompt_tokens": "2"}, None),
        ("lots", None),
    ],
)
def test_usage_is_read_leniently(usage, expected):
    assert usage_of({"usage": usage}) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"response": {"status_code": 200, "body": {}}}', "custom_id is missing"),
        ('{"custom_id": "x"}', "the line has neither a 'response' object nor an 'error'"),
        ('{"custom_id": "x", "response": {"body": {}}}', "response.status_code is missing"),
        ('{"custom_id": "x", "response": {"status_code": 200}}', "response.body is missing"),
        ('{"custom_id": "x", "error": 5}', "error is neither an object nor a string"),
    ],
)
def test_a_malformed_line_names_the_file_and_line(line, reason):
    with pytest.raises(InvalidResponseError) as raised:
        result_record(line, file_id="file-out", lineno=7)
    assert f"Together's file file-out, line 7: {reason}" in str(raised.value)
    assert permanent_failure(raised.value) is not None, "fails the task at once: asking again changes nothing"


def test_blank_lines_are_skipped():
    assert result_record(b"  \n", file_id="f", lineno=1) is None
    assert input_request(b"\n", file_id="f", lineno=1) is None


def test_merge_gives_every_request_one_record_in_file_order():
    outputs = [answer("a"), answer("c")]
    errors = [failed("b")]
    inputs = [asked("a"), asked("b"), asked("c"), asked("d", model="m/other"), b"\n"]
    got = list(merge([("file-out", outputs), ("file-err", errors)], ("file-in", inputs)))
    assert [(r["custom_id"], r["status"]) for r in got] == [
        ("a", "succeeded"),
        ("c", "succeeded"),
        ("b", "errored"),
        ("d", "missing"),
    ]
    assert got[-1] == {
        "custom_id": "d",
        "status": "missing",
        "response": None,
        "error": None,
        "usage": None,
        "model": "m/other",
    }


def test_merge_with_no_result_files_makes_every_request_missing():
    got = list(merge([], ("file-in", [asked("a"), asked("b")])))
    assert [(r["custom_id"], r["status"]) for r in got] == [("a", "missing"), ("b", "missing")]


def test_merge_keeps_the_first_answer_of_an_id_answered_twice(caplog):
    got = list(merge([("file-out", [answer("a")]), ("file-err", [failed("a")])], ("file-in", [asked("a")])))
    assert [(r["custom_id"], r["status"]) for r in got] == [("a", "succeeded")]
    assert "file-err, line 1 answers 'a' a second time" in caplog.text


def test_merge_reads_each_source_only_when_it_gets_there():
    opened = []

    def lines(name, items):
        opened.append(name)
        yield from items

    stream = merge([("out", lines("out", [answer("a")])), ("err", lines("err", []))], ("in", lines("in", [])))
    assert opened == []
    assert next(stream)["custom_id"] == "a"
    assert opened == ["out"], "the next file is not fetched before the first is read"
    assert list(stream) == []
    assert opened == ["out", "err", "in"]


def test_merge_names_the_input_file_for_a_broken_input_line():
    with pytest.raises(InvalidResponseError, match="file file-in, line 2: not valid JSON"):
        list(merge([], ("file-in", [asked("a"), b"{oops\n"])))


def test_tally_counts_and_sums_usage():
    tally = Tally()
    records = list(
        merge(
            [
                ("o", [answer("a", prompt=1, completion=2), answer("b", prompt=10, completion=20)]),
                ("e", [failed("c")]),
            ],
            ("i", [asked(x) for x in "abcd"]),
        )
    )
    for rec in records:
        tally.add(rec)
    assert tally.counts == {"succeeded": 2, "errored": 1, "missing": 1, "total": 4}
    assert tally.usage == {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}


def manifest_for(succeeded=0, errored=0, missing=0):
    tally = Tally()
    for status, n in (("succeeded", succeeded), ("errored", errored), ("missing", missing)):
        for _ in range(n):
            tally.add({"status": status, "usage": None})
    return build_manifest(
        batch_id="b-1",
        status="COMPLETED",
        result_uri="s3://bucket/rows.jsonl",
        tally=tally,
        output_file_id="file-out",
        error_file_id=None,
    )


def test_the_manifest_shape():
    manifest = manifest_for(succeeded=3, errored=1)
    assert manifest == {
        "schema_version": 1,
        "batch_id": "b-1",
        "status": "COMPLETED",
        "result_uri": "s3://bucket/rows.jsonl",
        "counts": {"succeeded": 3, "errored": 1, "missing": 0, "total": 4},
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "output_file_id": "file-out",
        "error_file_id": None,
    }
    assert json.loads(json.dumps(manifest)) == manifest


def test_success_ratio():
    assert success_ratio({"succeeded": 3, "errored": 1, "missing": 0, "total": 4}) == 0.75
    assert success_ratio({"succeeded": 0, "errored": 0, "missing": 0, "total": 0}) == 1.0


def test_fail_on_request_errors_counts_errored_and_missing():
    clean = manifest_for(succeeded=4)
    assert request_failure(clean, fail_on_request_errors=True, min_success_ratio=None) is None
    for manifest in (manifest_for(succeeded=3, errored=1), manifest_for(succeeded=3, missing=1)):
        assert request_failure(manifest, fail_on_request_errors=False, min_success_ratio=None) is None
        message = request_failure(manifest, fail_on_request_errors=True, min_success_ratio=None)
        assert message is not None
        assert "3 succeeded" in message and "of 4" in message and "fail_on_request_errors=True" in message
        assert "s3://bucket/rows.jsonl" in message


def test_min_success_ratio_both_ways():
    manifest = manifest_for(succeeded=3, errored=1)
    assert request_failure(manifest, fail_on_request_errors=False, min_success_ratio=0.75) is None
    message = request_failure(manifest, fail_on_request_errors=False, min_success_ratio=0.8)
    assert message is not None
    assert "success ratio 0.7500 is below min_success_ratio=0.8" in message
    assert "1 errored" in message and "s3://bucket/rows.jsonl" in message


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "0.9", True, float("nan")])
def test_a_bad_min_success_ratio_names_the_field(bad):
    with pytest.raises(ValueError, match=r"min_success_ratio=.*greater than 0 and at most 1"):
        checked_min_success_ratio(bad)


@pytest.mark.parametrize(("given", "expected"), [(None, None), (1, 1.0), (0.5, 0.5)])
def test_a_good_min_success_ratio(given, expected):
    assert checked_min_success_ratio(given) == expected
