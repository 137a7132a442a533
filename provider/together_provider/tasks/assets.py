"""What a finished batch tells the assets a task updates: the ``extra`` of each outlet's asset event.

Airflow records one asset event per outlet when a task succeeds; a task sets that event's ``extra``
through ``context["outlet_events"][asset]``. A DAG scheduled on the asset reads it back from
``triggering_asset_events`` (``triggering_dataset_events`` on Airflow 2), so a pipeline can act on a batch
it did not submit itself, knowing its id and file ids without an XCom from another DAG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The fields every batch event carries; a results task adds its counts and result_uri.
EVENT_KEYS = ("batch_id", "status", "output_file_id", "error_file_id")


def _is_alias(outlet: Any) -> bool:
    # An alias names no asset until the task says which one; this provider has no such choice to make.
    return type(outlet).__name__ in ("AssetAlias", "DatasetAlias")


def annotate_outlets(context: Any, extra: Mapping[str, Any]) -> list[str]:
    """Put ``extra`` on the asset event of every asset among the task's outlets; return their URIs.

    Aliases are left alone, and a context without ``outlet_events`` (a hand-built one) changes nothing.
    Values must be JSON-safe: Airflow stores the extra as JSON in the metadata database.
    """
    task = context.get("task") if hasattr(context, "get") else None
    outlets = list(getattr(task, "outlets", None) or ())
    events = context.get("outlet_events") if outlets else None
    if events is None:
        return []
    annotated = []
    for outlet in outlets:
        if _is_alias(outlet) or not hasattr(outlet, "uri"):
            continue
        events[outlet].extra.update(extra)
        annotated.append(str(outlet.uri))
    return annotated
