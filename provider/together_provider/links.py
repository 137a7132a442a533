"""Extra link from a task to its batch in Together's web console."""

from __future__ import annotations

from typing import Any

from together_provider._compat import BaseOperatorLink, XCom

XCOM_BATCH_URL = "batch_url"


class TogetherBatchLink(BaseOperatorLink):
    """Opens the batch in Together's console. The URL is built on the worker (where the connection and
    its ``console_url`` pattern are at hand) and kept in XCom, so the web server needs no API access."""

    name = "Together batch"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        url = XCom.get_value(ti_key=ti_key, key=XCOM_BATCH_URL)
        return url if isinstance(url, str) else ""


def batch_url(pattern: str, batch_id: str) -> str:
    try:
        return pattern.format(batch_id=batch_id)
    except (KeyError, IndexError, ValueError):
        # A pattern that does not fit should not fail the task that only wanted a link.
        return ""
