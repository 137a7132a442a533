"""Event-loop lag: how late a 10 ms heartbeat wakes up. Whatever blocks the loop (a sync HTTP call, a burst
of callbacks, a big JSON parse) delays every other trigger by the same amount, and shows up here."""

from __future__ import annotations

import asyncio
import time
from array import array

PERIOD = 0.010


class LagMonitor:
    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        # Wall-clock times, so samples can be matched with the server's request log afterwards.
        self.times = array("d")
        self.lags = array("d")
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(self.period)
            self.lags.append(time.perf_counter() - started - self.period)
            self.times.append(time.time())

    def stop(self) -> None:
        self._stop.set()

    def between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in zip(self.times, self.lags, strict=True) if start <= at <= end]
