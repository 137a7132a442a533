"""Small pieces every waiting task shares: the default timeout and the console link's XCom."""

from __future__ import annotations

from typing import Any

from together_provider.links import XCOM_BATCH_URL, batch_url

# Together asks users to wait 72 h before reporting a stuck batch: a shorter default would fail
# batches that are merely slow.
MIN_DEFAULT_TIMEOUT = 72 * 60 * 60


def default_timeout() -> float:
    from together_provider._compat import conf

    return max(conf.getfloat("sensors", "default_timeout", fallback=7 * 24 * 3600), MIN_DEFAULT_TIMEOUT)


def push_batch_url(context: Any, hook: Any, batch_id: str) -> None:
    url = batch_url(hook.settings.console_url, batch_id)
    if url:
        context["ti"].xcom_push(key=XCOM_BATCH_URL, value=url)
