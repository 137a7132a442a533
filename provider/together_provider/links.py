"""Extra link from a task to its batch in Together's web console."""

from __future__ import annotations

from typing import Any

from together_provider._compat import BaseOperatorLink, XCom

XCOM_BATCH_URL = "batch_url"


class TogetherBatchLink(BaseOperatorLink):
    """Opens the batch in Together's console. The URL is built on the worker (where the connection and
    its ``console_url`` pattern are at hand) and kept in XCom, so the web server needs no API access.

    Empty (Airflow shows no link) when the connection has no page for its batches: its base URL is not
    Together's API and it sets no ``console_url``, as for the bundled emulator."""

    name = "Together batch"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        url = _pushed_url(ti_key)
        return url if isinstance(url, str) else ""


def _pushed_url(ti_key: Any) -> Any:
    """The URL the task pushed, or None, without asking for an XCom that may not exist.

    Airflow 3 calls ``get_link`` on the worker as every task ends, failed ones included, and its task SDK
    logs an error for a single XCom it does not find. A task that failed before it knew its batch pushed
    no URL, so the first question is the one that cannot miss: the task's values under the key, over all
    map indexes (none is an empty answer, not an error). Airflow 2 reads the metadata DB, which answers
    None quietly, and has no such question.
    """
    get_all = getattr(XCom, "get_all", None)
    if get_all is None:
        return XCom.get_value(ti_key=ti_key, key=XCOM_BATCH_URL)
    found = get_all(key=XCOM_BATCH_URL, dag_id=ti_key.dag_id, task_id=ti_key.task_id, run_id=ti_key.run_id)
    if not found:
        return None
    if getattr(ti_key, "map_index", -1) < 0:
        return found[0]
    # A mapped task: the answer holds every map index's URL, in order but without their indexes, so this
    # one's is read by its key. It exists unless this index failed early while another pushed a URL.
    return XCom.get_value(ti_key=ti_key, key=XCOM_BATCH_URL)


def batch_url(pattern: str, batch_id: str) -> str:
    try:
        return pattern.format(batch_id=batch_id)
    except (KeyError, IndexError, ValueError):
        # A pattern that does not fit should not fail the task that only wanted a link.
        return ""
