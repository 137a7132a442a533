"""Comparison (a): the wait most people would write first. One aiohttp session per wait, a fixed interval
with no jitter, one log line per poll. No Airflow, no retries, no shared anything."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

TERMINAL = frozenset({"COMPLETED", "FAILED", "EXPIRED", "CANCELLED"})
log = logging.getLogger("plain_poller")


async def plain_wait(url: str, api_key: str, batch_id: str, interval: float) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {api_key}"}) as session:
        while True:
            async with session.get(f"{url}/v1/batches/{batch_id}") as response:
                batch = await response.json()
            status = batch.get("status")
            log.info("Together batch %s: %s, %s%% done", batch_id, status, batch.get("progress"))
            if status in TERMINAL:
                return {"status": status, "batch_id": batch_id}
            await asyncio.sleep(interval)
