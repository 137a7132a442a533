"""Which failed requests a repair round sends again, the lines it sends, and how its rows merge: the
rules of client/repair.py, without a server."""

from __future__ import annotations

import json

import pytest

from together_provider.client.repair import (
    MAX_ROUNDS,
    checked_rounds,
    merged_rows,
    needs_repair,
    repairable,
    round_summary,
    select_requests,
    tagged,
)
from together_provider.client.results import Tally


@pytest.mark.parametrize(
    "error",
    [
        {"message": "rate limited", "code": 429},
        {"message": "x", "code": "429"},
        {"message": "upstream", "code": 500},
        {"message": "bad gateway", "code": 502},
        {"message": "over capacity", "code": 503},
        {"message": "x", "code": 504},
        {"message": "request timeout", "code": 408},
        {"message": "conflict", "code": 409},
        {"message": "x", "code": "rate_limit_exceeded"},
        {"message": "x", "code": None, "body": {"error": {"type": "server_error"}}},
        {"message": "x", "type": "service_unavailable"},
        {"message": "The model is overloaded, please try again later", "code": None},
        {"message": "Request timed out", "code": None},
        "Rate limit reached for requests",
    ],
)
def test_errors_a_retry_can_fix(error):
    assert repairable(error) is True


@pytest.mark.parametrize(
    "error",
    [
        {"message": "bad request", "code": 400},
        {"message": "invalid key", "code": 401},
        {"message": "out of credits", "code": 402},
        {"message": "forbidden", "code": 403},
        {"message": "no such model", "code": 404},
        {"message": "too large", "code": 413},
        {"message": "unprocessable", "code": 422},
        # A code outranks the words: a 400 that says "try again" is still the caller's to fix.
        {"message": "invalid request, try again", "code": 400},
        {"message": "x", "code": "context_length_exceeded"},
        {"message": "x", "code": "invalid_request_error"},
        {"message": "x", "code": None, "body": {"error": {"type": "invalid_request_error"}}},
        {"message": "This model's maximum context length is 8192 tokens", "code": None},
        {"message": "something nobody understood", "code": None},
        {"message": "", "code": None},
        None,
    ],
)
def test_errors_no_retry_can_fix(error):
    assert repairable(error) is False


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"status": "missing", "error": None}, True),
        ({"status": "errored", "error": {"message": "x", "code": 503}}, True),
        ({"status": "errored", "error": {"message": "x", "code": 400}}, False),
        ({"status": "succeeded", "error": None}, False),
    ],
)
def test_needs_repair(row, expected):
    assert needs_repair(row) is expected


@pytest.mark.parametrize("bad", [-1, MAX_ROUNDS + 1, 1.5, "2", True, None])
def test_a_bad_number_of_rounds_is_refused_naming_the_field(bad):
    with pytest.raises(ValueError, match=r"retry_failed_requests=.*give a whole number of rounds from 0"):
        checked_rounds(bad)


def test_rounds_in_range_are_kept():
    assert [checked_rounds(n) for n in (0, 1, MAX_ROUNDS)] == [0, 1, MAX_ROUNDS]


def line(custom_id):
    return json.dumps({"custom_id": custom_id, "body": {"model": "m"}}).encode() + b"\n"


def test_select_requests_keeps_input_order_sends_each_once_and_leaves_what_it_did_not_find():
    lines = [line("a"), b"\n", line("b"), line("c"), line("b"), b"not json\n", line("d").rstrip(b"\n")]
    wanted = {"b", "d", "zzz"}
    got = list(select_requests(lines, wanted))
    assert got == [line("b"), line("d")]
    assert wanted == {"zzz"}


def row(custom_id, status, round_number=0):
    return {"custom_id": custom_id, "status": status, "round": round_number}


def test_a_round_s_answers_replace_the_earlier_rows_and_a_missing_answer_keeps_the_earlier_row():
    old = [row("a", "succeeded"), row("b", "errored"), row("c", "errored")]
    new = [row("b", "succeeded", 1), row("c", "missing", 1)]
    tally = Tally()
    merged = list(merged_rows(iter(new), iter(old), tally.add))
    assert merged == [row("b", "succeeded", 1), row("a", "succeeded"), row("c", "errored")]
    assert tally.counts == {"succeeded": 1, "errored": 0, "missing": 1, "total": 2}


def test_rows_are_tagged_and_a_round_is_summed_up():
    rows = list(tagged(iter([{"custom_id": "a"}]), 2, "batch-9"))
    assert rows == [{"custom_id": "a", "round": 2, "batch_id": "batch-9"}]
    counts = {"succeeded": 3, "errored": 1, "missing": 2, "total": 6}
    assert round_summary(1, ["b1"], counts) == {
        "round": 1,
        "batch_ids": ["b1"],
        "requests": 6,
        "succeeded": 3,
        "errored": 1,
        "missing": 2,
    }
