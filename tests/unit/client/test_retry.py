import email.utils

import pytest

from together_provider.client.errors import (
    APIConnectionError,
    APITimeoutError,
    InvalidResponseError,
    error_from_response,
)
from together_provider.client.retry import RetryPolicy, parse_retry_after

POLICY = RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=8.0, jitter=0.0)


def status(code, headers=None):
    return error_from_response(code, headers or {}, b'{"error": "x"}')


@pytest.mark.parametrize(
    ("error", "idempotent", "retry"),
    [
        (status(400), True, False),
        (status(401), True, False),
        (status(402), True, False),
        (status(403), True, False),
        (status(404), True, False),
        (status(422), True, False),
        (status(408), True, True),
        (status(409), True, True),
        (status(429), True, True),
        (status(500), True, True),
        (status(502), True, True),
        (status(503), True, True),
        (status(504), True, True),
        (status(500, {"x-should-retry": "false"}), True, False),
        (status(418, {"x-should-retry": "true"}), True, True),
        (status(404, {"x-should-retry": "true"}), True, False),
        (APITimeoutError("t"), True, True),
        (APIConnectionError("c"), True, True),
        (InvalidResponseError("garbled", transient=True), True, True),
        (InvalidResponseError("no 'status' in the batch"), True, False),
        # create: only where the server provably did nothing
        (status(500), False, False),
        (status(503), False, False),
        (status(429), False, True),
        (status(429, {"x-should-retry": "false"}), False, False),
        (APITimeoutError("t"), False, False),
        (APITimeoutError("t", request_sent=False), False, True),
        (APIConnectionError("c", request_sent=False), False, True),
        (APIConnectionError("dropped after send"), False, False),
        (InvalidResponseError("garbled", transient=True), False, False),
    ],
)
def test_retry_table(error, idempotent, retry):
    assert POLICY.is_retryable(error, idempotent=idempotent) is retry


def test_backoff_doubles_and_caps():
    assert [POLICY.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_jitter_only_shortens():
    policy = RetryPolicy(base_delay=1.0, jitter=0.5)
    delays = {policy.backoff(1) for _ in range(50)}
    assert all(0.5 <= d <= 1.0 for d in delays) and len(delays) > 1


def test_max_attempts_counts_first_try():
    err = status(503)
    assert POLICY.delay_for(err, 3) == 2.0
    assert POLICY.delay_for(err, 4) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-4"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers, expected):
    assert parse_retry_after(headers) == expected


def test_retry_after_http_date():
    when = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after({"Retry-After": when}, now=1_000_000) == pytest.approx(10.0)
    past = email.utils.formatdate(999_000, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=1_000_000) == 0.0


def test_server_hint_wins_over_backoff_and_long_hint_gives_up():
    assert POLICY.delay_for(status(429, {"Retry-After": "7"}), 1) == 7.0
    assert POLICY.delay_for(status(503, {"Retry-After": "2"}), 1) == 2.0
    assert POLICY.delay_for(status(429, {"Retry-After": "3600"}), 1) is None


def test_invalid_policy_refused():
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
