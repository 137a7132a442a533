"""A benchmark-only trigger for item 17: as much of a wait as Airflow's triggerer sees (a templated id
rendered in the triggerer, one check per interval, a ``TaskSuccessEvent`` with the sensor's XComs) and
none of the provider's code. N of these in the same stack as N provider waits give Airflow's own cost
per trigger, the floor under any provider's. It checks ``release_path`` off the loop every
``poll_interval`` seconds and ends the task once that file exists."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent


class NullWaitTrigger(BaseTrigger):
    template_fields = ("batch_id", "release_path")

    def __init__(self, *, batch_id: str, release_path: str, poll_interval: float = 20.0) -> None:
        super().__init__()
        self.batch_id = batch_id
        self.release_path = release_path
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_id": self.batch_id,
                "release_path": self.release_path,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[Any]:
        while not await asyncio.to_thread(os.path.exists, self.release_path):
            await asyncio.sleep(self.poll_interval)
        # The XComs the sensor's ending trigger pushes: each is a row Airflow writes for the event.
        result = {
            "batch_id": self.batch_id,
            "status": "COMPLETED",
            "output_file_id": "file-0",
            "error_file_id": None,
        }
        yield TaskSuccessEvent(xcoms={**result, "return_value": result})
