"""What the triggers of one event loop share: one HTTP connection pool, one request budget per
connection, and one answer for every wait on the same batch at the same moment.

A triggerer runs all its triggers on one loop. Giving each its own aiohttp session would open a pool
per trigger; polling one batch from ten tasks would cost ten requests; and nothing would stop a few
thousand waits from spending the account's rate limit. Everything here is per loop, so a test's or a
worker's private loop never shares with the triggerer's.

A share reads time through its ``clock`` and waits through its ``sleep`` (monotonic time and
``asyncio.sleep`` by default): a test installs a share with a virtual clock (:func:`install`) and
drives answer ages, the request budget and retry back-off without waiting for the wall clock.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from together_provider.client.budget import RequestBudget

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")
# Per host: enough parallelism for thousands of waits, few enough sockets to be a good citizen.
POOL_LIMIT = 32


@dataclass
class RecentAnswers:
    """Answers of one kind, oldest first, each kept for the longest ``max_age`` asked of this kind.

    Moving a key to the end on every write keeps it in fetch order, so forgetting is popping from the
    front: O(1) per fetch however many waits the loop holds. (An OrderedDict, not a dict: a dict's first
    item is found by skipping the slots of every item deleted before it.)
    """

    items: OrderedDict[Any, tuple[float, Any]] = field(default_factory=OrderedDict)
    keep: float = 0.0

    def fresh(self, key: Any, now: float, max_age: float) -> tuple[float, Any] | None:
        """(fetched at, answer) when an answer is at most ``max_age`` old."""
        found = self.items.get(key)
        return found if found is not None and now - found[0] <= max_age else None

    def put(self, key: Any, now: float, value: Any, max_age: float) -> None:
        self.keep = max(self.keep, max_age)
        items = self.items
        items[key] = (now, value)
        items.move_to_end(key)
        while items:
            oldest = next(iter(items))
            if now - items[oldest][0] <= self.keep:
                break
            items.popitem(last=False)


@dataclass
class LoopShare:
    # How old an answer is and when the budget lets a request go: seconds, any fixed origin.
    clock: Callable[[], float] = time.monotonic
    # What every wait of this share sleeps with (the budget's pacing, retry back-off).
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep
    session: aiohttp.ClientSession | None = None
    users: int = 0
    budgets: dict[str, RequestBudget] = field(default_factory=dict)
    inflight: dict[Any, asyncio.Future[Any]] = field(default_factory=dict)
    # Keyed by the first item of a key ("batch", "settings"): one kind's long max_age must not keep
    # another kind's answers alive.
    recent: dict[Any, RecentAnswers] = field(default_factory=dict)
    # Requests past the pool's size queue here, as one small waiter each, instead of each building
    # its aiohttp request and queueing inside the connector: 10,000 waits starting together would
    # otherwise hold 10,000 half-made requests at once.
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(POOL_LIMIT))
    # How many waits watch each key. An answer for a watched key is kept for reuse only where two or
    # more do: with one wait per batch (the common case) a kept answer would only outlive its use and,
    # across ten thousand waits, grow the garbage collector's oldest generation and so its pauses.
    watchers: dict[Any, int] = field(default_factory=dict)

    def acquire_session(self) -> aiohttp.ClientSession:
        import aiohttp

        if self.session is None or self.session.closed:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=POOL_LIMIT))
        self.users += 1
        return self.session

    async def release_session(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0 and self.session is not None:
            session, self.session = self.session, None
            await session.close()

    def watch(self, key: Any) -> None:
        self.watchers[key] = self.watchers.get(key, 0) + 1

    def unwatch(self, key: Any) -> None:
        left = self.watchers.get(key, 0) - 1
        if left > 0:
            self.watchers[key] = left
        else:
            self.watchers.pop(key, None)
            self.recent.get(key[0], RecentAnswers()).items.pop(key, None)

    def budget(self, conn_id: str, rate: float) -> RequestBudget:
        budget = self.budgets.get(conn_id)
        if budget is None or budget.rate != rate:
            budget = self.budgets[conn_id] = RequestBudget(rate)
        return budget

    async def once(self, key: tuple[Any, ...], max_age: float, fetch: Callable[[], Awaitable[T]]) -> T:
        """``fetch()``, unless an answer for ``key`` is at most ``max_age`` seconds old or on its way."""
        value, _ = await self.once_aged(key, max_age, fetch)
        return value

    async def once_aged(
        self, key: tuple[Any, ...], max_age: float, fetch: Callable[[], Awaitable[T]]
    ) -> tuple[T, float]:
        """Like :meth:`once`, with the answer's age in seconds: a wait that reuses another's answer
        can time its next poll from when the answer was fetched, so waits on one batch fall into step
        and keep sharing one poll."""
        answers = self.recent.get(key[0])
        if answers is None:
            answers = self.recent[key[0]] = RecentAnswers()
        now = self.clock()
        found = answers.fresh(key, now, max_age)
        if found is not None:
            return found[1], now - found[0]
        pending = self.inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending), 0.0
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
                # The wait that was fetching went away (its task was killed): fetch for ourselves.
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.inflight[key] = future
        try:
            value = await fetch()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved, so a fetch nobody else shared logs no warning
            raise
        else:
            future.set_result(value)
            if max_age > 0 and self.watchers.get(key, 2) > 1:
                answers.put(key, self.clock(), value, max_age)
            return value, 0.0
        finally:
            self.inflight.pop(key, None)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopShare] = weakref.WeakKeyDictionary()


def current() -> LoopShare:
    loop = asyncio.get_running_loop()
    share = _BY_LOOP.get(loop)
    if share is None:
        share = _BY_LOOP[loop] = LoopShare()
    return share


def install(share: LoopShare) -> LoopShare:
    """Make ``share`` the running loop's (before anything on the loop asked for one): how a test
    gives every wait on its loop one virtual clock and sleep."""
    _BY_LOOP[asyncio.get_running_loop()] = share
    return share
