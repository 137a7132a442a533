"""Two DAGs started by BatchFinishedTrigger watchers, for the e2e watcher scenario (no task waits).

    BatchFinishedTrigger (triggerer) ──asset event──> report_batches

Both watch batches whose input file name starts with ``e2e-watch-`` and poll every 2 s on
``together_default``, so they share one poll per triggerer: ``e2e_together_watch`` fires on COMPLETED,
``e2e_together_watch_failed`` on COMPLETED or FAILED. Each run returns the batch id and output file of
every event of its run: Airflow may fold events that arrive close together into one run, so the
scenario counts batch ids over all runs. Paused on creation: the scenario unpauses them, which starts
the watchers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task
from airflow.sdk import Asset, AssetWatcher

from together_provider.triggers.watch import BatchFinishedTrigger

NAME_PREFIX = "e2e-watch-"
POLL_INTERVAL = 2
WATCHES = {
    # dag_id: (asset URI, watcher name, statuses)
    "e2e_together_watch": ("together://batches/e2e", "e2e_watch", ("COMPLETED",)),
    "e2e_together_watch_failed": (
        "together://batches/e2e-failed",
        "e2e_watch_failed",
        ("COMPLETED", "FAILED"),
    ),
}


def watch_dag(dag_id: str, uri: str, watcher: str, statuses: tuple[str, ...]) -> DAG:
    asset = Asset(
        uri,
        watchers=[
            AssetWatcher(
                name=watcher,
                trigger=BatchFinishedTrigger(
                    name_prefix=NAME_PREFIX, statuses=statuses, poll_interval=POLL_INTERVAL
                ),
            )
        ],
    )
    with DAG(
        dag_id=dag_id,
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        is_paused_upon_creation=True,
        tags=["together", "e2e"],
    ) as dag:

        @task
        def report_batches(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
            return [
                {
                    "batch_id": event.extra["payload"]["batch_id"],
                    "status": event.extra["payload"]["status"],
                    "output_file_id": event.extra["payload"]["output_file_id"],
                }
                for event in triggering_asset_events[asset]
            ]

        report_batches()
    return dag


for _dag_id, (_uri, _watcher, _statuses) in WATCHES.items():
    globals()[_dag_id] = watch_dag(_dag_id, _uri, _watcher, _statuses)
