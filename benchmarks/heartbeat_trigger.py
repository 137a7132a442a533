"""A benchmark-only trigger that measures the triggerer's event loop from inside it: it sleeps ``period``
seconds in a loop and records how late it wakes. Samples go to ``path`` as ``<unix time> <lag s>`` lines,
written off the loop (``asyncio.to_thread``) every ``flush_every`` samples, so the measurement does no
blocking I/O on the loop it measures. It ends when ``stop_path`` exists."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class HeartbeatTrigger(BaseTrigger):
    def __init__(self, *, path: str, stop_path: str, period: float = 0.1, flush_every: int = 20) -> None:
        super().__init__()
        self.path = path
        self.stop_path = stop_path
        self.period = float(period)
        self.flush_every = int(flush_every)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path,
                "stop_path": self.stop_path,
                "period": self.period,
                "flush_every": self.flush_every,
            },
        )

    def _flush(self, lines: str) -> bool:
        with open(self.path, "a") as sink:
            sink.write(lines)
        return os.path.exists(self.stop_path)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        pending: list[str] = []
        samples = 0
        while True:
            started = time.monotonic()
            await asyncio.sleep(self.period)
            lag = time.monotonic() - started - self.period
            pending.append(f"{time.time():.3f} {lag:.6f}\n")
            samples += 1
            if len(pending) >= self.flush_every:
                lines, pending = "".join(pending), []
                if await asyncio.to_thread(self._flush, lines):
                    break
        yield TriggerEvent({"samples": samples})
