"""Run a DAG whenever a Together batch finishes, whoever submitted it (an app, a notebook, another DAG):
no task waits for it.

    BatchFinishedTrigger (triggerer) ──asset event──> report_batch

The asset ``together://batches/finished`` has a watcher: ``BatchFinishedTrigger`` polls the account's
batch list in the triggerer and emits one asset event per batch that finished COMPLETED, with the batch
in ``extra["payload"]`` (``batch_id``, ``status``, ``output_file_id``, ``error_file_id``,
``created_at``, ``completed_at``, ``input_file_name``). Airflow starts a run of this DAG for new events;
events that arrive close together may share one run, so ``report_batch`` handles every event of its
run. Only batches that finish after the watcher first started count.

``TOGETHER_EXAMPLE_WATCH_PREFIX`` (default: every batch) keeps to batches whose input file's name starts
with it; ``TOGETHER_EXAMPLE_POLL_INTERVAL`` sets the poll (seconds, default 60). The DAG starts paused:
unpause it to start the watcher. Needs Airflow 3.0+ (event-driven scheduling); on Airflow 2 this file
defines no DAG. Uses the ``together_default`` connection.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from together_provider.triggers.watch import WATCHERS_SUPPORTED, BatchFinishedTrigger

NAME_PREFIX = os.environ.get("TOGETHER_EXAMPLE_WATCH_PREFIX") or None
POLL_INTERVAL = float(os.environ.get("TOGETHER_EXAMPLE_POLL_INTERVAL", "60"))

if WATCHERS_SUPPORTED:
    from airflow.sdk import Asset, AssetWatcher

    # [START howto_trigger_together_batch_finished]
    batches_finished = Asset(
        "together://batches/finished",
        watchers=[
            AssetWatcher(
                name="together_batches_finished",
                trigger=BatchFinishedTrigger(
                    together_conn_id="together_default",
                    name_prefix=NAME_PREFIX,
                    statuses=("COMPLETED",),
                    poll_interval=POLL_INTERVAL,
                ),
            )
        ],
    )
    # [END howto_trigger_together_batch_finished]

    with DAG(
        dag_id="example_together_batch_watcher",
        schedule=[batches_finished],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        is_paused_upon_creation=True,
        tags=["together", "example"],
        doc_md=__doc__,
    ) as dag:
        # [START howto_trigger_together_batch_finished_consumer]
        @task
        def report_batch(triggering_asset_events: Any = None) -> list[str | None]:
            """Each finished batch of this run, and where its answers are."""
            outputs = []
            for event in triggering_asset_events[batches_finished]:
                batch = event.extra["payload"]
                print(
                    f"Together batch {batch['batch_id']} ({batch['input_file_name']}) finished "
                    f"{batch['status']} at {batch['completed_at']}: output file {batch['output_file_id']}"
                )
                outputs.append(batch["output_file_id"])
            return outputs

        # [END howto_trigger_together_batch_finished_consumer]

        report_batch()
