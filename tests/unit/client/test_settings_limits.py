"""The connection extras that bound one API call: max_response_mb and total_timeout."""

from __future__ import annotations

import pytest

from together_provider.client.settings import (
    DEFAULT_MAX_RESPONSE_MB,
    DEFAULT_TOTAL_TIMEOUT,
    ConnectionSettings,
)


def _settings(**extra: object) -> ConnectionSettings:
    return ConnectionSettings.from_parts(host=None, password="k", extra=extra)


def test_defaults():
    settings = _settings()
    assert settings.max_response_bytes == int(DEFAULT_MAX_RESPONSE_MB * 1024 * 1024)
    assert settings.total_timeout == DEFAULT_TOTAL_TIMEOUT


def test_extras_read_as_numbers_from_text_too():
    settings = _settings(max_response_mb="64", total_timeout="30.5")
    assert settings.max_response_bytes == 64 * 1024 * 1024
    assert settings.total_timeout == 30.5


def test_an_unset_deadline_grows_with_raised_per_read_timeouts():
    # Whoever raised the read timeout for a slow proxy would not expect every call cut at the default.
    assert _settings(timeout=300, connect_timeout=20).total_timeout == 320
    assert _settings(timeout=300, total_timeout=60).total_timeout == 60


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_response_mb": 0.5}, "'max_response_mb' must be at least 1"),
        ({"max_response_mb": "lots"}, "'max_response_mb' must be a number"),
        ({"total_timeout": 0}, "'total_timeout' must be at least 1"),
        ({"total_timeout": "soon"}, "'total_timeout' must be a number"),
    ],
)
def test_bad_values_refused_naming_the_extra(extra, message):
    with pytest.raises(ValueError, match=message):
        _settings(**extra)
