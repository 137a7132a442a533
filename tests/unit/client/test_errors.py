import pytest

from together_provider.client.errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
    error_from_response,
    parse_error_body,
)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (418, APIStatusError),
    ],
)
def test_status_maps_to_class(status, cls):
    err = error_from_response(status, {"x-request-id": "req-1"}, b'{"error": "nope"}')
    assert type(err) is cls
    assert err.status_code == status
    assert err.message == "nope"
    assert err.request_id == "req-1"
    assert "req-1" in str(err) and str(status) in str(err)


@pytest.mark.parametrize(
    ("body", "message", "etype", "code", "param"),
    [
        (b'{"error": "Batch not found"}', "Batch not found", None, None, None),
        (
            b'{"error": {"message": "bad file", "type": "invalid_request_error", '
            b'"param": "file", "code": "x1"}}',
            "bad file",
            "invalid_request_error",
            "x1",
            "file",
        ),
        (b'{"message": "plain"}', "plain", None, None, None),
        (
            b"<html><body><h1>502 Bad Gateway</h1></body></html>",
            "non-JSON error page (HTML), probably from a proxy or load balancer",
            None,
            None,
            None,
        ),
        (b"", "empty error body", None, None, None),
        (b"upstream connect error", "upstream connect error", None, None, None),
        ("text body", "text body", None, None, None),
    ],
)
def test_parse_error_body_shapes(body, message, etype, code, param):
    parsed = parse_error_body(body)
    assert parsed == {"message": message, "type": etype, "code": code, "param": param}


def test_long_bodies_are_shortened():
    parsed = parse_error_body("x" * 5000)
    assert len(parsed["message"]) == 300
    assert parsed["message"].endswith("...")


def test_rate_limit_carries_retry_after_and_operation():
    err = error_from_response(429, {}, b'{"error": "slow down"}', retry_after=3.0, operation="get batch b1")
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 3.0
    assert str(err).startswith("get batch b1: Together API answered 429: slow down")


def test_hints_name_the_fix():
    assert "API key" in str(error_from_response(401, {}, b'{"error": "invalid key"}'))
    assert "credits" in str(error_from_response(402, {}, b'{"error": "no money"}'))
