"""Batches to wait on: one uploaded input whose model keeps every batch IN_PROGRESS, and many batches
made from it. The emulator answers 404 for unknown ids, so the waits need real batches."""

from __future__ import annotations

import asyncio
import json
import time

from benchmarks.common import API_KEY

NEVER_FINISH_LINE = {
    "custom_id": "bench-0",
    "body": {"model": "emulator/never-finish", "messages": [{"role": "user", "content": "wait"}]},
}
# Enough in flight to keep the emulator busy on both cores, few enough not to queue in its backlog.
_CONCURRENCY = 32


def upload_never_finish(url: str) -> str:
    import requests

    content = json.dumps(NEVER_FINISH_LINE) + "\n"
    response = requests.post(
        f"{url}/v1/files/upload",
        headers={"Authorization": f"Bearer {API_KEY}"},
        files={
            "purpose": (None, "batch-api"),
            "file_name": (None, "never-finish.jsonl"),
            "file": ("never-finish.jsonl", content),
        },
        timeout=60,
    )
    response.raise_for_status()
    return response.json()["id"]


async def _create(url: str, file_id: str, count: int) -> list[str]:
    import aiohttp

    ids: list[str] = []
    gate = asyncio.Semaphore(_CONCURRENCY)
    body = {"endpoint": "/v1/chat/completions", "input_file_id": file_id}
    headers = {"Authorization": f"Bearer {API_KEY}"}

    async def one(session: aiohttp.ClientSession) -> None:
        async with gate, session.post(f"{url}/v1/batches", json=body, headers=headers) as response:
            response.raise_for_status()
            ids.append((await response.json())["job"]["id"])

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session) for _ in range(count)))
    return ids


def create_batches(url: str, file_id: str, count: int) -> tuple[list[str], float]:
    """``count`` new batches; returns their ids and the seconds creating them took."""
    started = time.perf_counter()
    ids = asyncio.run(_create(url, file_id, count)) if count > 0 else []
    return ids, time.perf_counter() - started
