"""Print the trigger table as JSON: id, triggerer, batch and deadline of each trigger.

The REST API never shows trigger kwargs (they may hold secrets), and the table stores them encrypted,
so the deadline check reads them through Airflow's own model. Run with the stack's Airflow environment:
``python -m tests.e2e.trigger_rows``. Prints only those fields, never the whole kwargs.
"""

from __future__ import annotations

import json

from airflow.models.trigger import Trigger
from airflow.utils.session import create_session
from sqlalchemy import select


def main() -> None:
    with create_session() as session:
        rows = [
            {
                "id": trigger.id,
                "triggerer_id": trigger.triggerer_id,
                "classpath": trigger.classpath,
                "batch_id": trigger.kwargs.get("batch_id"),
                "deadline": trigger.kwargs.get("deadline"),
            }
            for trigger in session.scalars(select(Trigger))
        ]
    print("TRIGGER_ROWS " + json.dumps(rows))


if __name__ == "__main__":
    main()
