"""Connection settings as data: base URL normalization, key, timeouts, retries. No Airflow, no I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from together_provider.client.retry import RetryPolicy

DEFAULT_BASE_URL = "https://api.together.ai"
# Together's docs publish no address for a batch's page in its web console: this one is unverified, so
# it is used only for a connection to Together itself, and the connection extra console_url replaces it.
DEFAULT_CONSOLE_URL = "https://api.together.ai/batches/{batch_id}"
# The hosts of Together's own API, whose batches the default console link can show.
TOGETHER_HOSTS = frozenset({"api.together.ai", "api.together.xyz"})
DEFAULT_TIMEOUT = 60.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_RETRIES = 4
# Shared by every wait on one connection in one triggerer; Together's own limits are per account.
DEFAULT_REQUESTS_PER_SECOND = 25.0
# An API answer (not a file download) is held whole to be parsed. A list of 10,000 batches is about
# 7 MB; the cap is there against a server or proxy that sends without end, or a gzip bomb.
DEFAULT_MAX_RESPONSE_MB = 16.0
# Timeouts are per read, so an answer dripped a byte at a time never trips them: this bounds one
# attempt of one API call as a whole.
DEFAULT_TOTAL_TIMEOUT = 120.0
MIN_TOTAL_TIMEOUT = 1.0
# The smallest values the extras accept (the connection form states the same bounds).
MIN_TIMEOUT = 0.001
MIN_REQUESTS_PER_SECOND = 0.001
MIN_MAX_RESPONSE_MB = 1.0
# The connection form's "Test" waits on its answer: it reports what one attempt got, and a host that
# does not accept a connection within this is named as unreachable rather than retried for seconds.
CHECK_CONNECT_TIMEOUT = 3.0
CHECK_MAX_ATTEMPTS = 1


# ``scheme://user:password@`` inside any text; the password part is what must never be shown.
_PASSWORD_IN_URL = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*):[^\s/]*@")


def without_userinfo(url: str) -> str:
    """``url`` with its ``user[:password]@`` taken out: the form to record (lineage) or show for a URL
    whose user part means nothing to a reader. A text without a scheme is read as ``host[:port]...``."""
    if "://" not in url:
        authority, slash, rest = url.partition("/")
        return authority.rpartition("@")[2] + slash + rest
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def hide_passwords(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with the password of every ``scheme://user:password@``
    in it replaced by ``***``: the form for messages and log lines. A user name stays, since in an object
    storage URL (``s3://conn_id@bucket/key``) it is the Airflow connection's id."""
    return _PASSWORD_IN_URL.sub(r"\g<head>:***@", text)


def normalize_base_url(host: str | None, *, schema: str | None = None, port: int | None = None) -> str:
    """Accept ``api.together.ai``, ``https://api.together.xyz/v1/`` and the like; return ``scheme://host[:port]``.

    Paths are added as ``/v1/...`` by the request builders, so a trailing ``/v1`` is dropped here.

    :raises ValueError: the host holds a user name or password (``https://user:pw@host``). requests would
        send them as Basic auth in place of the API key, and the URL is shown and recorded in many places;
        the message names the host without them.
    """
    text = (host or "").strip() or DEFAULT_BASE_URL
    if "://" not in text:
        scheme = (schema or "").strip() or ("http" if text.startswith(("localhost", "127.")) else "https")
        text = f"{scheme}://{text}"
    if "@" in urlsplit(text).netloc:
        scheme, _, rest = text.partition("://")
        raise ValueError(
            f"the Together connection's host (or TOGETHER_BASE_URL) holds a user name or password "
            f"({scheme}://***@{without_userinfo(rest)}); put the API key in the connection's password "
            f"field and only scheme://host[:port] in its host"
        )
    text = text.rstrip("/")
    if text.endswith("/v1"):
        text = text[: -len("/v1")]
    if port and text.count(":") < 2:
        text = f"{text}:{port}"
    return text


def base_url_from(
    host: str | None,
    *,
    schema: str | None = None,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """The base URL a connection points at: its host, else ``TOGETHER_BASE_URL``, else Together's."""
    return normalize_base_url(host or (env or {}).get("TOGETHER_BASE_URL"), schema=schema, port=port)


def console_pattern(base_url: str, console_url: str | None) -> str | None:
    """The pattern of a batch's page (``{batch_id}`` in it) for the task's link, or None when there is
    nowhere to link: a connection's own ``console_url``, else Together's console for a base URL on
    Together's API, else none (an emulator, a proxy or another host has no page for the batch there)."""
    if console_url:
        return console_url
    return DEFAULT_CONSOLE_URL if (urlsplit(base_url).hostname or "") in TOGETHER_HOSTS else None


def _number(extra: Mapping[str, Any], key: str, default: float, *, minimum: float) -> float:
    value = extra.get(key)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"connection extra {key!r} must be a number, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"connection extra {key!r} must be at least {minimum}, got {value!r}")
    return number


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything a transport needs. ``repr`` leaves the key out, so a logged settings object is safe."""

    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # The connection's own pattern; None when unset (see batch_page_pattern).
    console_url: str | None = None
    requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND
    max_response_bytes: int = int(DEFAULT_MAX_RESPONSE_MB * 1024 * 1024)
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT

    @classmethod
    def from_parts(
        cls,
        *,
        host: str | None,
        schema: str | None = None,
        port: int | None = None,
        password: str | None,
        extra: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ConnectionSettings:
        env = env or {}
        extra = extra or {}
        api_key = (password or "").strip() or (env.get("TOGETHER_API_KEY") or "").strip()
        if not api_key:
            raise ValueError(
                "no Together API key: put it in the connection's password field (API Key) "
                "or set the TOGETHER_API_KEY environment variable"
            )
        retries = int(_number(extra, "max_retries", DEFAULT_MAX_RETRIES, minimum=0))
        timeout = _number(extra, "timeout", DEFAULT_TIMEOUT, minimum=MIN_TIMEOUT)
        connect_timeout = _number(extra, "connect_timeout", DEFAULT_CONNECT_TIMEOUT, minimum=MIN_TIMEOUT)
        return cls(
            base_url=base_url_from(host, schema=schema, port=port, env=env),
            api_key=api_key,
            timeout=timeout,
            connect_timeout=connect_timeout,
            retry=RetryPolicy(max_attempts=retries + 1),
            console_url=str(extra.get("console_url") or "").strip() or None,
            requests_per_second=_number(
                extra, "max_requests_per_second", DEFAULT_REQUESTS_PER_SECOND, minimum=MIN_REQUESTS_PER_SECOND
            ),
            max_response_bytes=int(
                _number(extra, "max_response_mb", DEFAULT_MAX_RESPONSE_MB, minimum=MIN_MAX_RESPONSE_MB)
                * 1024
                * 1024
            ),
            # Unset, it grows with the per-read timeouts: whoever raised those for a slow proxy should
            # not find every call cut at the default.
            total_timeout=_number(
                extra,
                "total_timeout",
                max(DEFAULT_TOTAL_TIMEOUT, connect_timeout + timeout),
                minimum=MIN_TOTAL_TIMEOUT,
            ),
        )

    def for_check(
        self, *, connect_timeout: float = CHECK_CONNECT_TIMEOUT, max_attempts: int = CHECK_MAX_ATTEMPTS
    ) -> ConnectionSettings:
        """These settings with a connect timeout of at most ``connect_timeout`` and at most
        ``max_attempts`` attempts per call: for a check a person waits on."""
        return replace(
            self,
            connect_timeout=min(self.connect_timeout, connect_timeout),
            retry=replace(self.retry, max_attempts=min(self.retry.max_attempts, max_attempts)),
        )

    @property
    def batch_page_pattern(self) -> str | None:
        """The task's "Together batch" link pattern, None when there is none (:func:`console_pattern`)."""
        return console_pattern(self.base_url, self.console_url)

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a text built from an answer (see ``client/redact.py``)."""
        return (self.api_key,)

    def url_for(self, path: str) -> str:
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
