"""BatchStatusTrigger: waits for a Together batch in the triggerer, without holding a worker slot."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from together_provider._compat import AIRFLOW_V_3_3_PLUS, BaseTrigger, TriggerEvent, task_instance_state
from together_provider.client.errors import APIStatusError, RateLimitError, TogetherError
from together_provider.client.models import BatchJob
from together_provider.client.polling import next_poll_interval, predicted_seconds_left
from together_provider.client.retry import RetryPolicy
from together_provider.outcome import EVENT_ERROR, EVENT_TIMEOUT

DEFAULT_POLL_INTERVAL = 60.0
DEFAULT_MAX_CONSECUTIVE_FAILURES = 5
# Only its classification is used here: whether waiting can fix an answer (429, 5xx) or not (401, 404).
_POLICY = RetryPolicy()
# An answer fetched for another wait on the same batch is reused while younger than this part of the
# interval: many tasks waiting on one batch cost one poll.
SHARE_FRACTION = 0.25
# A wait logs a poll when the status or progress moved, else at most this often: ten thousand waits
# logging every unchanged poll would cost the loop more than the polls and bury the task log.
QUIET_LOG_SECONDS = 600.0


def batch_event(batch: BatchJob) -> dict[str, Any]:
    """The one small JSON payload that ends a wait on a finished batch."""
    return {
        "status": batch.status.value,
        "batch_id": batch.id,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "error": batch.error,
        "progress": batch.progress,
    }


def _progress_line(batch: BatchJob, first: tuple[float, float] | None, now: float, left: float | None) -> str:
    line = f"Together batch {batch.id}: {batch.raw_status}"
    if batch.progress is not None:
        line += f", {batch.progress:.1f}% done"
    if first is not None:
        line += f", waited {now - first[0]:.0f} s"
    if left is not None:
        line += f", roughly {left:.0f} s left"
    return line


class _ProgressLog:
    """What one wait learnt from its polls: the first progress seen (for the rate), the predicted
    time left, and the last line logged (an unchanged poll is logged again only after a while)."""

    __slots__ = ("first", "log", "logged", "logged_at", "seconds_left")

    def __init__(self, log: Any) -> None:
        self.log = log
        self.first: tuple[float, float] | None = None
        self.seconds_left: float | None = None
        self.logged: tuple[str, float | None] | None = None
        self.logged_at = 0.0

    def seen(self, batch: BatchJob, now: float) -> None:
        if self.first is None and batch.progress is not None:
            self.first = (now, batch.progress)
        self.seconds_left = predicted_seconds_left(self.first, now, batch.progress)
        state = (batch.raw_status, batch.progress)
        if state != self.logged or now - self.logged_at >= QUIET_LOG_SECONDS or batch.status.is_terminal:
            self.log.info(_progress_line(batch, self.first, now, self.seconds_left))
            self.logged, self.logged_at = state, now


class BatchStatusTrigger(BaseTrigger):
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
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__()
        # Not serialized: tests pass a fake clock and sleep so that a wait's timing is deterministic.
        self._clock = clock or time.time
        self._sleep = sleep or asyncio.sleep
        if not batch_id or not str(batch_id).strip():
            raise ValueError("batch_id must be a non-empty string")
        if poll_interval <= 0:
            raise ValueError(f"poll_interval must be greater than 0 seconds, got {poll_interval!r}")
        self.batch_id = str(batch_id).strip()
        self.together_conn_id = together_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.max_consecutive_failures = int(max_consecutive_failures)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.adaptive_polling = bool(adaptive_polling)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "batch_id": self.batch_id,
                "together_conn_id": self.together_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "max_consecutive_failures": self.max_consecutive_failures,
                "cancel_on_kill": self.cancel_on_kill,
                "adaptive_polling": self.adaptive_polling,
            },
        )

    def _client(self) -> Any:
        # Imported on first use: workers build this trigger only to defer, and need no aiohttp for that.
        from together_provider.hooks.async_client import AsyncTogetherClient

        return AsyncTogetherClient(self.together_conn_id)

    def _end(self, status: str, message: str, *, retryable: bool = False) -> TriggerEvent:
        """A wait that ended without a terminal batch status. ``retryable`` tells the task whether
        a new try could succeed (polling kept failing) or not (wrong key, unknown batch)."""
        return TriggerEvent(
            {
                "status": status,
                "batch_id": self.batch_id,
                "output_file_id": None,
                "error_file_id": None,
                "error": message,
                "progress": None,
                "retryable": retryable,
            }
        )

    def _next_wait(self, now: float, seconds_left: float | None, retry_after: float | None = None) -> float:
        wait = next_poll_interval(
            self.poll_interval, seconds_left=seconds_left, adaptive=self.adaptive_polling
        )
        # Jitter spreads waits that started together; the server's Retry-After outranks both.
        wait *= random.uniform(0.9, 1.1)
        if retry_after is not None:
            wait = max(wait, retry_after)
        if self.deadline is not None:
            wait = min(wait, max(0.0, self.deadline - now))
        return wait

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = self._client()
        progress = _ProgressLog(self.log)
        failures = 0
        error = ""
        try:
            try:
                await client.settings()
                client.watch(self.batch_id)
            except Exception as exc:
                # A missing connection or key: no later poll can fix it.
                yield self._end(EVENT_ERROR, f"connection {self.together_conn_id!r}: {exc}")
                return
            while True:
                if self.deadline is not None and self._clock() >= self.deadline:
                    yield self._end(
                        EVENT_TIMEOUT, f"Together batch {self.batch_id} did not finish before the deadline"
                    )
                    return
                retry_after = None
                age = 0.0
                try:
                    # Waits on the same batch in this triggerer share one recent answer.
                    batch, age = await client.get_batch_aged(
                        self.batch_id, max_age=self.poll_interval * SHARE_FRACTION
                    )
                except TogetherError as exc:
                    if isinstance(exc, APIStatusError) and not _POLICY.is_retryable(exc):
                        yield self._end(EVENT_ERROR, str(exc))
                        return
                    failures += 1
                    # Only the text is kept: an exception holds its traceback's frames until replaced.
                    error = str(exc)
                    retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
                else:
                    failures = 0
                    progress.seen(batch, self._clock())
                    if batch.status.is_terminal:
                        yield TriggerEvent(batch_event(batch))
                        return
                    # Not held over the sleep: across ten thousand waits, answers kept alive for an
                    # interval end up in the garbage collector's oldest generation and lengthen its pauses.
                    del batch
                if failures:
                    if failures >= self.max_consecutive_failures:
                        yield self._end(
                            EVENT_ERROR,
                            f"polling Together batch {self.batch_id} failed {failures} times in a row; "
                            f"last error: {error}",
                            retryable=True,
                        )
                        return
                    self.log.warning(
                        "Polling Together batch %s failed (%d of %d allowed in a row): %s",
                        self.batch_id,
                        failures,
                        self.max_consecutive_failures,
                        error,
                    )
                # Counted from when the answer was fetched: a wait that reused another's answer then
                # wakes in step with it, and the two keep sharing one poll instead of drifting apart.
                wait = self._next_wait(self._clock(), progress.seconds_left, retry_after)
                await self._sleep(max(0.0, wait - age))
        finally:
            await client.close()

    async def _cancel(self) -> None:
        client = self._client()
        try:
            batch = await client.cancel_batch(self.batch_id)
            self.log.info(
                "Cancelled Together batch %s (now %s): its task was killed", self.batch_id, batch.raw_status
            )
        except Exception as exc:
            self.log.warning(
                "Could not cancel Together batch %s after its task was killed: %s", self.batch_id, exc
            )
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
