"""Issue 22, point 5: a user name or password in the base URL (the connection's host, or
``TOGETHER_BASE_URL``) is refused with a message that does not repeat it, and no password in a URL is
shown by the connection test, recorded in lineage or quoted in storage's messages."""

from __future__ import annotations

import json
import socket

import pytest

from together_provider.client.settings import ConnectionSettings, normalize_base_url
from together_provider.hooks.together import TogetherHook
from together_provider.tasks.lineage import api_host

from .conftest import SECRET_KEY
from .hostile import reply

PASSWORD = "pw-hostile-9c8b7a6f5e4d"


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def use_connection(monkeypatch, host: str, **extra: object) -> None:
    extra.setdefault("max_retries", 0)
    conn = {"conn_type": "together", "host": host, "password": SECRET_KEY, "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", json.dumps(conn))


# ---- 5. credentials in the base URL -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [f"http://user:{PASSWORD}@127.0.0.1:9", f"user:{PASSWORD}@api.together.ai", f"https://{PASSWORD}@h/v1"],
)
def test_a_base_url_with_userinfo_is_refused_without_repeating_it(host):
    with pytest.raises(ValueError, match="user name or password") as caught:
        normalize_base_url(host)
    assert PASSWORD not in str(caught.value)
    assert "put the API key in the connection's password field" in str(caught.value)


def test_together_base_url_env_with_userinfo_is_refused_too():
    env = {"TOGETHER_BASE_URL": f"http://u:{PASSWORD}@127.0.0.1:9"}
    with pytest.raises(ValueError, match="TOGETHER_BASE_URL") as caught:
        ConnectionSettings.from_parts(host=None, password=SECRET_KEY, env=env)
    assert PASSWORD not in str(caught.value)


def test_connection_test_with_userinfo_host_sends_nothing_and_shows_no_password(hostile, monkeypatch):
    server = hostile(lambda request, conn: reply(conn, 200, b'{"data": []}'))
    use_connection(monkeypatch, server.url.replace("http://", f"http://user:{PASSWORD}@"))
    ok, message = TogetherHook().test_connection()
    assert not ok
    assert PASSWORD not in message
    assert "user name or password" in message and f"127.0.0.1:{server.port}" in message
    assert server.seen == [], "a host with userinfo is refused before anything is sent"


def test_connection_test_of_an_unreachable_userinfo_host_shows_no_password(monkeypatch):
    use_connection(monkeypatch, f"http://user:{PASSWORD}@127.0.0.1:{closed_port()}")
    ok, message = TogetherHook().test_connection()
    assert not ok
    assert PASSWORD not in message


def test_connection_test_with_no_key_and_a_userinfo_host_shows_no_password(monkeypatch):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    conn = {"conn_type": "together", "host": f"http://user:{PASSWORD}@127.0.0.1:9"}
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", json.dumps(conn))
    ok, message = TogetherHook().test_connection()
    assert not ok
    assert PASSWORD not in message


def test_connection_test_masks_a_password_quoted_by_any_exception(hostile, monkeypatch):
    """The generic branch: whatever fails (a proxy with credentials, say) may quote a URL."""
    hostile(lambda request, conn: reply(conn, 200, b'{"data": []}'))
    import together_provider.hooks.together as module

    def fail(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"Cannot connect to proxy http://proxy-user:{PASSWORD}@10.0.0.1:3128")

    monkeypatch.setattr(module, "run_sync", fail)
    ok, message = TogetherHook().test_connection()
    assert not ok
    assert PASSWORD not in message
    assert "http://proxy-user:***@10.0.0.1:3128" in message


def test_lineage_api_host_has_no_userinfo():
    assert api_host(f"http://user:{PASSWORD}@127.0.0.1:8080") == "127.0.0.1:8080"
    assert api_host("https://api.together.ai") == "api.together.ai"


def test_storage_messages_mask_a_password_in_the_url():
    from together_provider.tasks import storage

    url = f"s3://aws_conn:{PASSWORD}@bucket/key.jsonl"
    error = storage.translate_store_error(FileNotFoundError("nope"), url, "path")
    assert error is not None and PASSWORD not in str(error)
    with pytest.raises(ValueError) as caught:
        storage.resolve(f"file://user:{PASSWORD}@host/tmp/x", field="path")
    assert PASSWORD not in str(caught.value)
    from together_provider.client.settings import hide_passwords

    assert hide_passwords(url) == "s3://aws_conn:***@bucket/key.jsonl"
