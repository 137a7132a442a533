"""BatchStatusTrigger: waits for a Together batch in the triggerer, without holding a worker slot."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from together_provider._compat import AIRFLOW_V_3_3_PLUS, BaseTrigger, TriggerEvent, task_instance_state
from together_provider.client.cancel import describe as describe_cancel
from together_provider.client.errors import TogetherError
from together_provider.client.ids import batch_ids_of, checked_id
from together_provider.client.models import BatchJob
from together_provider.client.polling import checked_poll_interval
from together_provider.client.wait import EVENT_ERROR, ListTracker, WaitTracker, ended_event
from together_provider.triggers import heap
from together_provider.triggers.log import OffLoopLogging

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
# An answer fetched for another wait on the same batch is reused while younger than this part of the
# interval: many tasks waiting on one batch cost one poll.
SHARE_FRACTION = 0.25
# A wait logs a poll when the status or progress moved, else at most this often: ten thousand waits
# logging every unchanged poll would cost the loop more than the polls and bury the task log.
QUIET_LOG_SECONDS = 600.0


def _progress_line(batch: BatchJob, tracker: WaitTracker, now: float, since: float) -> str:
    line = f"Together batch {batch.id}: {batch.raw_status}"
    if batch.progress is not None:
        line += f", {batch.progress:.1f}% done"
    # The worker's and the triggerer's clocks may differ a little: never a negative wait.
    line += f", waited {max(0.0, now - since):.0f} s"
    if tracker.seconds_left is not None:
        line += f", roughly {tracker.seconds_left:.0f} s left"
    return line


class _ProgressLog:
    """The last line one wait logged: an unchanged poll is logged again only after a while. ``since`` is
    when the task's wait began, which its lines count "waited" from."""

    __slots__ = ("log", "logged", "logged_at", "since")

    def __init__(self, log: Any, since: float) -> None:
        self.log = log
        self.since = since
        self.logged: tuple[str, float | None] | None = None
        self.logged_at = 0.0

    def seen(self, batch: BatchJob, tracker: WaitTracker, now: float) -> None:
        state = (batch.raw_status, batch.progress)
        if state != self.logged or now - self.logged_at >= QUIET_LOG_SECONDS or batch.status.is_terminal:
            self.log.info(_progress_line(batch, tracker, now, self.since))
            self.logged, self.logged_at = state, now


class _BatchWaitTrigger(OffLoopLogging, BaseTrigger):
    """What the batch waits' triggers share: the wait's settings as stored in their kwargs, the clock
    and sleep (never serialized: tests pass fake ones so a wait's timing is deterministic), the client."""

    def __init__(
        self,
        *,
        together_conn_id: str,
        poll_interval: float,
        deadline: float | None,
        max_consecutive_failures: int,
        cancel_on_kill: bool,
        adaptive_polling: bool,
        waiting_since: float | None,
        clock: Callable[[], float] | None,
        sleep: Callable[[float], Awaitable[Any]] | None,
    ) -> None:
        super().__init__()
        self._clock = clock or time.time
        self._sleep = sleep or asyncio.sleep
        self.together_conn_id = together_conn_id
        self.poll_interval = checked_poll_interval(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.adaptive_polling = bool(adaptive_polling)
        self.waiting_since = None if waiting_since is None else float(waiting_since)

    def _wait_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "together_conn_id": self.together_conn_id,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "max_consecutive_failures": self.max_consecutive_failures,
            "cancel_on_kill": self.cancel_on_kill,
            "adaptive_polling": self.adaptive_polling,
        }
        # Only when set: a wait stored without it serializes back to exactly the kwargs it was stored with.
        if self.waiting_since is not None:
            kwargs["waiting_since"] = self.waiting_since
        return kwargs

    def _since(self) -> float:
        """When the task's wait began, for the "waited" of the progress lines. Kept in the kwargs, so a
        triggerer restart does not reset it; a wait stored without it (deferred by an older release, or
        started in the triggerer from the DAG file's kwargs) counts from this run's start instead."""
        return self._clock() if self.waiting_since is None else self.waiting_since

    def _client(self) -> Any:
        # Imported on first use: workers build these triggers only to defer, and need no aiohttp for that.
        from together_provider.hooks.async_client import AsyncTogetherClient

        return AsyncTogetherClient(self.together_conn_id)

    def _waited_ids(self) -> list[str]:
        raise NotImplementedError

    async def _cancel(self) -> None:
        """Cancel every batch of the wait; what cannot be cancelled is logged, never raised."""
        client = self._client()
        try:
            ids = self._waited_ids()
            outcomes = await asyncio.gather(*(client.cancel(bid) for bid in ids), return_exceptions=True)
            for bid, outcome in zip(ids, outcomes, strict=True):
                if isinstance(outcome, Exception):
                    self.log.warning(
                        "Could not cancel Together batch %s after its task was killed: %s", bid, outcome
                    )
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    self.log.info("Its task was killed: %s", describe_cancel(outcome))
        finally:
            await client.close()

    async def on_kill(self) -> None:
        """Airflow 3.3+: a user acted on the deferred task (never called on a triggerer restart)."""
        if self.cancel_on_kill:
            await self._cancel()

    async def cleanup(self) -> None:
        """Before Airflow 3.3 there is no ``on_kill``: cleanup runs on every exit, restarts included, so
        cancel only when the task instance is no longer deferred (a user acted on it)."""
        await super().cleanup()
        if not self.cancel_on_kill or AIRFLOW_V_3_3_PLUS:
            return
        state = await task_instance_state(self.task_instance)
        if state is not None and state not in ("deferred", "running", "scheduled", "queued"):
            await self._cancel()


class BatchStatusTrigger(_BatchWaitTrigger):
    """Polls one batch until it reaches a terminal status, the deadline passes, or polling keeps failing.

    Yields exactly one event and returns. Its kwargs hold no secret: the key is looked up from the
    connection inside :meth:`run`, without blocking the event loop.

    :param batch_id: the Together batch to wait for.
    :param together_conn_id: the Airflow connection holding the API key.
    :param poll_interval: seconds between polls (a little jitter is added so many waits spread out).
    :param deadline: Unix time at which to give up with a timeout event; kept as wall-clock time so a
        triggerer restart does not restart the clock. None waits without limit.
    :param max_consecutive_failures: polls in a row that may fail (after the retry policy's own
        retries) before the wait ends with an error event.
    :param adaptive_polling: poll sooner when the progress rate says the batch is about to finish and
        later when it is far from it, between a quarter of and twice ``poll_interval``.
    :param cancel_on_kill: cancel the batch when a user kills the deferred task (marks it failed or
        success, or clears it). Never on a triggerer restart: on Airflow 3.3+ through ``on_kill``; before,
        through ``cleanup`` once the task instance is seen to be no longer deferred.
    :param waiting_since: Unix time at which the task's wait began (when it deferred); the progress lines
        say how long the task has waited counted from it. None (a wait stored by 0.1.0, or one started
        in the triggerer) counts from when this trigger started running.
    :param clock: wall-clock time in seconds (default ``time.time``); not serialized.
    :param sleep: the coroutine function the wait sleeps with (default ``asyncio.sleep``); not serialized.
    """

    def __init__(
        self,
        *,
        batch_id: str,
        together_conn_id: str = "together_default",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        deadline: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        cancel_on_kill: bool = False,
        adaptive_polling: bool = True,
        waiting_since: float | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        batch_id = checked_id(batch_id, "batch_id")
        super().__init__(
            together_conn_id=together_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            max_consecutive_failures=max_consecutive_failures,
            cancel_on_kill=cancel_on_kill,
            adaptive_polling=adaptive_polling,
            waiting_since=waiting_since,
            clock=clock,
            sleep=sleep,
        )
        self.batch_id = batch_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"batch_id": self.batch_id, **self._wait_kwargs()},
        )

    def _waited_ids(self) -> list[str]:
        return [self.batch_id]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The triggerer's startup heap is complete once its first wait runs (see heap.py).
        heap.freeze_once()
        client = self._client()
        tracker = WaitTracker(
            self.batch_id,
            self.poll_interval,
            deadline=self.deadline,
            max_consecutive_failures=self.max_consecutive_failures,
            adaptive=self.adaptive_polling,
        )
        progress = _ProgressLog(self.log, self._since())
        try:
            try:
                await client.settings()
                client.watch(self.batch_id)
            except Exception as exc:
                # A missing connection or key: no later poll can fix it.
                message = f"connection {self.together_conn_id!r}: {exc}"
                yield TriggerEvent(ended_event(EVENT_ERROR, self.batch_id, message))
                return
            while True:
                event = tracker.before_poll(self._clock())
                age = 0.0
                if event is None:
                    try:
                        # Waits on the same batch in this triggerer share one recent answer.
                        batch, age = await client.get_batch_aged(
                            self.batch_id, max_age=self.poll_interval * SHARE_FRACTION
                        )
                    except TogetherError as exc:
                        event = tracker.failed(exc)
                        if event is None:
                            self.log.warning("%s", tracker.failure_line())
                    else:
                        now = self._clock()
                        event = tracker.answered(batch, now)
                        progress.seen(batch, tracker, now)
                        # Not held over the sleep: across ten thousand waits, answers kept alive for
                        # an interval end up in the garbage collector's oldest generation.
                        del batch
                if event is not None:
                    yield TriggerEvent(event)
                    return
                # Counted from when the answer was fetched: a wait that reused another's answer then
                # wakes in step with it, and the two keep sharing one poll instead of drifting apart.
                await self._sleep(tracker.next_sleep(self._clock(), age))
        finally:
            await client.close()


class BatchListStatusTrigger(_BatchWaitTrigger):
    """Polls several batches until all are COMPLETED, one ends FAILED, EXPIRED or CANCELLED, the deadline
    passes, or polling one keeps failing; yields exactly one event (see ``client.wait.ListTracker.event``)
    and returns.

    Each batch is polled at its own cadence, as a :class:`BatchStatusTrigger` on it would be, through the
    loop's share: waits on the same batch share one answer, and every poll spends the connection's
    request budget. A batch that has finished is not polled again.

    :param batch_ids: the Together batches to wait for, in the order their lists are reported.
    :param cancel_rest_on_failure: once one batch ends FAILED, EXPIRED or CANCELLED, cancel the others
        still running before the event is sent (their statuses in it are the cancels' answers).
    :param cancel_on_kill: cancel every batch of the list when a user kills the deferred task.

    The other parameters are :class:`BatchStatusTrigger`'s.
    """

    def __init__(
        self,
        *,
        batch_ids: list[str],
        together_conn_id: str = "together_default",
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        deadline: float | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
        cancel_on_kill: bool = False,
        cancel_rest_on_failure: bool = False,
        adaptive_polling: bool = True,
        waiting_since: float | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        ids = batch_ids_of(list(batch_ids) if isinstance(batch_ids, tuple) else batch_ids, "batch_ids")
        super().__init__(
            together_conn_id=together_conn_id,
            poll_interval=poll_interval,
            deadline=deadline,
            max_consecutive_failures=max_consecutive_failures,
            cancel_on_kill=cancel_on_kill,
            adaptive_polling=adaptive_polling,
            waiting_since=waiting_since,
            clock=clock,
            sleep=sleep,
        )
        self.batch_ids = [ids] if isinstance(ids, str) else ids
        self.cancel_rest_on_failure = bool(cancel_rest_on_failure)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_ids": list(self.batch_ids),
                **self._wait_kwargs(),
                "cancel_rest_on_failure": self.cancel_rest_on_failure,
            },
        )

    async def _poll(self, client: Any, batch_id: str) -> tuple[BatchJob | None, float, TogetherError | None]:
        try:
            batch, age = await client.get_batch_aged(batch_id, max_age=self.poll_interval * SHARE_FRACTION)
        except TogetherError as exc:
            return None, 0.0, exc
        return batch, age, None

    def _waited_ids(self) -> list[str]:
        return list(self.batch_ids)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        heap.freeze_once()
        tracker = ListTracker(
            self.batch_ids,
            self.poll_interval,
            deadline=self.deadline,
            max_consecutive_failures=self.max_consecutive_failures,
            adaptive=self.adaptive_polling,
        )
        # One small client per batch: each watches its batch in the loop share, so another wait on the
        # same batch shares its answers; all of them use the loop's one session and budget.
        clients = {bid: self._client() for bid in self.batch_ids}
        since = self._since()
        progress = {bid: _ProgressLog(self.log, since) for bid in self.batch_ids}
        try:
            try:
                await clients[self.batch_ids[0]].settings()
                for bid, client in clients.items():
                    client.watch(bid)
            except Exception as exc:
                message = f"connection {self.together_conn_id!r}: {exc}"
                tracker.end(EVENT_ERROR, None, message)
                yield TriggerEvent(tracker.event())
                return
            while True:
                event = tracker.before_poll(self._clock())
                if event is None:
                    due = tracker.due_ids(self._clock())
                    answers = await asyncio.gather(
                        *(self._poll(clients[bid], bid) for bid in due), return_exceptions=True
                    )
                    unexpected = [a for a in answers if isinstance(a, BaseException)]
                    if unexpected:
                        raise unexpected[0]
                    now = self._clock()
                    # Every answer of the round is recorded, so the event reports the latest statuses.
                    for bid, answer in zip(due, answers, strict=True):
                        assert not isinstance(answer, BaseException)
                        batch, age, error = answer
                        if batch is None:
                            assert error is not None
                            got = tracker.failed(bid, error, now)
                            if got is None:
                                self.log.warning("%s", tracker.trackers[bid].failure_line())
                        else:
                            got = tracker.answered(batch, now, age, batch_id=bid)
                            progress[bid].seen(batch, tracker.trackers[bid], now)
                        event = event or got
                    del answers
                if event is not None:
                    await self._cancel_rest(tracker, clients)
                    yield TriggerEvent(tracker.event())
                    return
                await self._sleep(tracker.next_sleep(self._clock()))
        finally:
            for client in clients.values():
                await client.close()

    async def _cancel_rest(self, tracker: ListTracker, clients: dict[str, Any]) -> None:
        rest = tracker.to_cancel(self.cancel_rest_on_failure)
        if not rest:
            return
        self.log.info("Cancelling the %d Together batches still running (cancel_rest_on_failure)", len(rest))
        outcomes = await asyncio.gather(*(clients[bid].cancel(bid) for bid in rest), return_exceptions=True)
        for bid, outcome in zip(rest, outcomes, strict=True):
            if isinstance(outcome, Exception):
                self.log.warning("Could not cancel Together batch %s: %s", bid, outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self.log.info(describe_cancel(outcome))
                tracker.was_cancelled(outcome.batch, batch_id=bid)
