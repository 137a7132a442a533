"""Where the task's "Together batch" link may lead: Together's console for a connection to Together's
own API, the connection's ``console_url`` wherever it is set, and nowhere for any other host."""

from __future__ import annotations

import pytest

from together_provider.client.settings import DEFAULT_CONSOLE_URL, ConnectionSettings


def pattern(host: str | None, **extra: object) -> str | None:
    return ConnectionSettings.from_parts(host=host, password="k", extra=extra).batch_page_pattern


@pytest.mark.parametrize(
    "host",
    [
        None,
        "api.together.ai",
        "https://api.together.ai/v1",
        "https://api.together.xyz",
        "api.together.xyz:443",
    ],
)
def test_a_connection_to_togethers_api_links_to_its_console(host):
    assert pattern(host) == DEFAULT_CONSOLE_URL


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8080",
        "localhost:9000",
        "https://together-proxy.internal.example",
        # Only Together's hosts themselves: a name that merely holds one is another host.
        "https://api.together.ai.example.com",
    ],
)
def test_any_other_host_has_no_link(host):
    assert pattern(host) is None


@pytest.mark.parametrize("host", ["http://127.0.0.1:8080", "api.together.ai"])
def test_console_url_is_the_link_wherever_it_is_set(host):
    assert (
        pattern(host, console_url="https://console.example/b/{batch_id}")
        == "https://console.example/b/{batch_id}"
    )


@pytest.mark.parametrize("value", ["", "  ", None])
def test_an_empty_console_url_is_unset(value):
    assert pattern("http://127.0.0.1:8080", console_url=value) is None
    assert pattern("api.together.ai", console_url=value) == DEFAULT_CONSOLE_URL
