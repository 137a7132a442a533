"""Helpers shared by test modules: request files, XComs as the metadata DB holds them, a task instance
stand-in, waiting for a batch, and a virtual clock that drives waits without racing the wall clock. Test
modules import these from here, never from one another."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from collections.abc import Awaitable
from typing import Any


def write_requests(path, n=3, model="test/model", extra_lines=()):
    with open(path, "w") as handle:
        for i in range(n):
            body = {"model": model, "messages": [{"role": "user", "content": f"question {i}"}]}
            handle.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
        for line in extra_lines:
            handle.write(json.dumps(line) + "\n")
    return path


# Every XCom of the metadata DB as rows of (dag_id, run_id, task_id, map_index, key, value), by the table
# the installed Airflow keeps them in. Up to 3.3 that is `xcom`. 3.4 keeps them per task attempt in
# `xcom_v2`, keyed by the attempt's task_instance row (its map index column is `region_index`, and
# `working_set` marks the current attempt), and leaves the rows of before an upgrade in `xcom_v1`.
_XCOM_ROWS = {
    "xcom": "SELECT dag_id, run_id, task_id, map_index, key, value FROM xcom",
    "xcom_v2": (
        "SELECT dag_id, run_id, task_id, map_index, key, value FROM xcom_v1 UNION ALL "
        "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.region_index, x.key, x.value FROM xcom_v2 AS x "
        "JOIN task_instance AS ti ON ti.id = x.task_instance_id WHERE ti.working_set"
    ),
}


def stored_xcoms(dag_id: str, run_id: str, task_id: str) -> dict[tuple[int, str], Any]:
    """``{(map_index, key): value}`` of a task's XComs as the metadata DB holds them (JSON on every
    supported Airflow), read with SQL rather than through Airflow, whose XCom API differs by version."""
    from airflow.utils.session import create_session
    from sqlalchemy import inspect, text

    with create_session() as session:
        table = "xcom_v2" if inspect(session.get_bind()).has_table("xcom_v2") else "xcom"
        rows = session.execute(
            text(
                f"SELECT map_index, key, value FROM ({_XCOM_ROWS[table]}) AS stored "
                "WHERE dag_id = :d AND run_id = :r AND task_id = :t"
            ),
            {"d": dag_id, "r": run_id, "t": task_id},
        ).all()
    return {
        (index, key): json.loads(value if isinstance(value, str) else bytes(value).decode())
        for index, key, value in rows
    }


def wait_terminal(hook, batch_id, limit=20.0):
    # The limit only stops a hung test; it asserts nothing about speed.
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        batch = hook.get_batch(batch_id)
        if batch.status.is_terminal:
            return batch
        time.sleep(0.1)
    raise AssertionError(f"batch {batch_id} did not finish in {limit} s")


class RecordingTI:
    """What operators need of a task instance outside a DAG run: where XComs go, and its identity."""

    dag_id, run_id, task_id, map_index, try_number = "d", "manual__1", "submit", -1, 1

    def __init__(self):
        self.xcoms = {}

    def xcom_push(self, key, value):
        self.xcoms[key] = value

    def xcom_pull(self, task_ids=None, key="return_value", **_):
        assert task_ids in (None, self.task_id), "a RecordingTI holds only its own XComs"
        return self.xcoms.get(key)


class TimeUp(Exception):
    """Raised inside the waits still sleeping when :meth:`VirtualTime.gather`'s ``stop_after`` passes."""


class VirtualTime:
    """A clock and a sleep for waits run through :meth:`gather`: time moves only when every wait is
    asleep, straight to the earliest wake-up. Real I/O (HTTP to the emulator) takes no virtual time, so
    what a test asserts about timing follows from the code alone, not from how busy the machine is.

    ``sleeps`` records every sleep asked for, in order. Many sleeps in a row that never move the clock
    are a busy loop: they raise instead of hanging the test.
    """

    BUSY_SLEEPS = 10_000

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.start = start
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._active = 0
        self._stop: float | None = None
        self._still = 0

    def clock(self) -> float:
        return self.now

    @property
    def elapsed(self) -> float:
        return self.now - self.start

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._still = self._still + 1 if seconds <= 0 else 0
        if self._still > self.BUSY_SLEEPS:
            raise RuntimeError(f"busy loop: {self._still} sleeps of 0 s in a row at t+{self.elapsed:g} s")
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._order), woken))
        self._wake_if_all_asleep()
        await woken

    def _wake_if_all_asleep(self) -> None:
        while self._sleepers and len(self._sleepers) >= self._active:
            wake, _, woken = heapq.heappop(self._sleepers)
            if woken.done():
                continue
            if self._stop is not None and wake > self._stop:
                self.now = self._stop
                for _, _, other in [(wake, 0, woken), *self._sleepers]:
                    if not other.done():
                        other.set_exception(TimeUp())
                self._sleepers.clear()
                return
            self.now = max(self.now, wake)
            woken.set_result(None)
            return

    async def gather(self, *waits: Awaitable[Any], stop_after: float | None = None) -> list[Any]:
        """Run ``waits`` concurrently on this clock; every sleep they ask for must be :meth:`sleep`.
        With ``stop_after``, a wait still sleeping that many seconds from now ends with None."""
        if stop_after is not None:
            self._stop = self.now + stop_after

        async def one(wait: Awaitable[Any]) -> Any:
            try:
                return await wait
            except TimeUp:
                return None
            finally:
                self._active -= 1
                self._wake_if_all_asleep()

        self._active += len(waits)
        return await asyncio.gather(*(one(wait) for wait in waits))
