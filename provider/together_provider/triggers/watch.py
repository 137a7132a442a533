"""BatchFinishedTrigger: start a DAG run when a Together batch finishes, whoever submitted it.

For ``AssetWatcher`` (event-driven scheduling, Airflow 3.0+)::

    Asset("together://batches/finished", watchers=[
        AssetWatcher(name="together_batches", trigger=BatchFinishedTrigger(name_prefix="nightly-")),
    ])

How a batch is found: one ``GET /v1/batches`` per poll. Together's list is unpaginated, so one request
sees every batch of the account however many there are; getting known ids one by one would cost a
request per batch per poll and could never find a batch submitted elsewhere (by an app, a notebook,
another Airflow). The input file's name (for ``name_prefix`` and the event) costs one
``GET /v1/files/{id}`` per candidate batch, once: names are kept per file id.

Exactly once per batch per watcher, and what a crash costs:

- Airflow 3.3+ keeps a watermark in the watched asset's state store: when the watcher first started (or
  ``since``) and the ids it emitted in the last hour of completions. Watchers on one connection and
  poll interval share one poll (``shared_stream_key``) in ack mode: a watcher's watermark is written
  only after the events it derived from a poll were confirmed stored in the metadata database (the
  producer's ``advance``), and never before. So a triggerer killed after an event was stored but before
  the watermark was written emits that event again on restart (at least once, never lost); one killed
  before the event was stored emits it on restart (never lost). Events carry ``batch_id`` and
  ``completed_at``, so a downstream that must never run twice de-duplicates on ``batch_id``.
- Before 3.3 (no state store) the watermark lives in memory: within one triggerer's life each batch is
  emitted once; after a restart the watcher starts afresh from the restart (a batch that finished while
  it was down is not emitted) unless ``since`` is set, which replays every batch since then (de-duplicate
  downstream on ``batch_id``).

A batch is dated by ``completed_at`` (``created_at`` where Together gave none). Timestamps come at whole
seconds, so a batch that finished in the second the watcher first started counts as new rather than
being missed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from together_provider._compat import EVENT_DRIVEN_SCHEDULING, BaseEventTrigger, TriggerEvent
from together_provider.client.errors import NotFoundError
from together_provider.client.models import BatchJob, BatchStatus
from together_provider.client.polling import checked_poll_interval
from together_provider.client.wait import batch_event
from together_provider.hooks import loop_share
from together_provider.triggers import heap
from together_provider.triggers.log import OffLoopLogger, OffLoopLogging

DEFAULT_POLL_INTERVAL = 60.0
STREAM = "together-batches"
# Emitted ids are remembered while they finished within this long of the newest one emitted. Together
# dates a batch when it finishes, so the list shows batches finished in about that order; a batch
# shown finished later than this behind a newer one would be taken for one already handled.
LOOKBACK = timedelta(hours=1)
STATE_KEY_PREFIX = "together_batch_watch"
TERMINAL_STATUSES = tuple(status.value for status in BatchStatus if status.is_terminal)

log = OffLoopLogger(logging.getLogger(__name__))

Commit = Callable[[], Awaitable[None]]

__all__ = ["BatchFinishedTrigger", "BatchListProducer", "WatchState"]


# Whether this Airflow runs asset watchers (3.0+): what a DAG file checks before declaring one.
WATCHERS_SUPPORTED = EVENT_DRIVEN_SCHEDULING


def checked_statuses(value: Any) -> tuple[str, ...]:
    """The terminal statuses a watcher fires on; every check of ``statuses`` is here."""
    items: list[str] | None
    if isinstance(value, str):
        items = [value.strip().upper()]
    else:
        try:
            items = [str(item).strip().upper() for item in value]
        except TypeError:
            items = None
    if not items or any(item not in TERMINAL_STATUSES for item in items):
        raise ValueError(
            f"statuses must be one or more of the terminal statuses {TERMINAL_STATUSES}, got {value!r}"
        )
    return tuple(dict.fromkeys(items))


def checked_since(value: Any) -> str | None:
    """``since`` as an ISO-8601 UTC string (naive times are taken as UTC), or None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise ValueError(
                f"since must be None or an ISO-8601 datetime such as '2026-01-01T00:00:00+00:00', "
                f"got {value!r}"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat()


def checked_name_prefix(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"name_prefix must be a string or None, got {value!r}")
    return value


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _parse(text: Any) -> datetime:
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class WatchState:
    """One watcher's watermark: batches finished before ``floor`` are not new, and ``seen`` holds the
    ids emitted that finished at or after it (with when they finished)."""

    floor: datetime
    seen: dict[str, datetime] = field(default_factory=dict)

    @classmethod
    def fresh(cls, start: datetime) -> WatchState:
        # Whole seconds, as Together dates batches: a batch of the same second is new, not missed.
        return cls(floor=start.astimezone(UTC).replace(microsecond=0))

    def is_new(self, batch_id: str, finished: datetime) -> bool:
        return finished >= self.floor and batch_id not in self.seen

    def mark(self, batch_id: str, finished: datetime) -> None:
        self.seen[batch_id] = finished
        floor = max(self.seen.values()) - LOOKBACK
        if floor > self.floor:
            self.floor = floor
            self.seen = {key: when for key, when in self.seen.items() if when >= floor}

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "floor": _iso(self.floor),
            "seen": {key: _iso(when) for key, when in sorted(self.seen.items())},
        }

    @classmethod
    def from_json(cls, raw: Any) -> WatchState | None:
        """None when ``raw`` is not a watermark this provider wrote."""
        try:
            return cls(
                floor=_parse(raw["floor"]),
                seen={str(key): _parse(when) for key, when in dict(raw.get("seen") or {}).items()},
            )
        except (TypeError, KeyError, ValueError, AttributeError):
            return None


def finished_at(batch: BatchJob) -> datetime | None:
    return batch.completed_at or batch.created_at


def finished_event(batch: BatchJob, input_file_name: str | None) -> dict[str, Any]:
    """The event's payload: the sensor's fields, when the batch was made and finished, and its input."""
    event = batch_event(batch)
    event.update(
        created_at=_iso(batch.created_at),
        completed_at=_iso(batch.completed_at),
        input_file_id=batch.input_file_id,
        input_file_name=input_file_name,
    )
    return event


class FileNames:
    """Input file names, asked once per file id, for the watchers of one poll."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._names: dict[str, str | None] = {}

    async def name(self, file_id: str) -> str | None:
        if file_id in self._names:
            return self._names[file_id]
        client = self._client

        async def fetch() -> str | None:
            try:
                return (await client.get_file(file_id)).filename
            except NotFoundError:
                return None  # a deleted file never gets a name back

        # Watchers asking for the same file at once make one request.
        name = await loop_share.current().once(("file", client.conn_id, file_id), 0.0, fetch)
        self._names[file_id] = name
        return name

    def keep_only(self, file_ids: Iterable[str]) -> None:
        """Forget names of files no batch in the list refers to any more."""
        keep = set(file_ids)
        self._names = {key: value for key, value in self._names.items() if key in keep}


@dataclass(eq=False)
class BatchListSnapshot:
    """One poll's answer, shared by every watcher of the poll. Each watcher adds the write of its
    watermark to ``commits``; the producer runs them once the poll's events are stored."""

    batches: tuple[BatchJob, ...]
    polled_at: datetime
    names: FileNames
    commits: list[Commit] = field(default_factory=list)


async def poll_batches(
    conn_id: str, poll_interval: float, sleep: Callable[[float], Awaitable[Any]]
) -> AsyncIterator[BatchListSnapshot]:
    """The account's batches every ``poll_interval`` seconds, forever: a failed poll is logged and
    tried again at the next interval (a watcher that stopped would silently start no more runs)."""
    from together_provider.hooks.async_client import AsyncTogetherClient

    client = AsyncTogetherClient(conn_id)
    names = FileNames(client)
    try:
        while True:
            try:
                batches = await client.list_batches()
            except Exception as exc:  # a missing connection as much as a Together error
                log.warning(
                    "Listing Together batches on connection %r failed; trying again in %g s: %s",
                    conn_id,
                    poll_interval,
                    exc,
                )
            else:
                names.keep_only(batch.input_file_id for batch in batches if batch.input_file_id)
                yield BatchListSnapshot(tuple(batches), datetime.now(UTC), names)
                del batches
            await sleep(poll_interval)
    finally:
        await client.close()


class BatchListProducer:
    """The shared poll in Airflow 3.3's ack mode (a ``SharedStreamProducer`` by shape: that class
    exists only on 3.3). ``advance`` is called with the polls whose derived events every watcher has
    had stored, and writes each watcher's watermark then."""

    def __init__(self, conn_id: str, poll_interval: float) -> None:
        self.conn_id = conn_id
        self.poll_interval = poll_interval

    async def open_stream(self) -> AsyncIterator[tuple[BatchListSnapshot, BatchListSnapshot]]:
        heap.freeze_once()
        # The loop's sleep: what a test's virtual clock replaces for every wait on the loop.
        async for snapshot in poll_batches(self.conn_id, self.poll_interval, loop_share.current().sleep):
            yield snapshot, snapshot

    def get_advance_lane(self, broker_payload: Any) -> Hashable:
        return None

    async def advance(self, batch: Sequence[Any]) -> None:
        for item in batch:
            outcome = item.outcome
            if outcome.failed or outcome.rejected:
                # Some watcher's events were not stored: no watermark moves on this poll. Each
                # watcher writes its whole watermark again after its next poll, so none is lost.
                continue
            for commit in item.broker_payload.commits:
                await commit()
            item.broker_payload.commits.clear()

    async def aclose(self) -> None:
        return None


class _Watch:
    """One watcher at work: its watermark, where it is kept, and what it selects from a poll."""

    def __init__(
        self,
        state: WatchState,
        store: Any,
        key: str,
        statuses: tuple[str, ...],
        name_prefix: str | None,
        logger: Any,
    ) -> None:
        self.state = state
        self.store = store
        self.key = key
        self.statuses = statuses
        self.name_prefix = name_prefix
        self.log = logger
        self.durable: dict[str, Any] | None = state.to_json() if store is not None else None

    async def select(self, snapshot: BatchListSnapshot) -> AsyncIterator[TriggerEvent]:
        candidates = []
        for batch in snapshot.batches:
            if batch.status.value not in self.statuses:
                continue
            finished = finished_at(batch) or snapshot.polled_at
            if self.state.is_new(batch.id, finished):
                candidates.append((finished, batch.id, batch))
        candidates.sort(key=lambda item: (item[0], item[1]))
        for finished, _, batch in candidates:
            name = None
            if batch.input_file_id:
                try:
                    name = await snapshot.names.name(batch.input_file_id)
                except Exception as exc:
                    if self.name_prefix is not None:
                        self.log.warning(
                            "Could not read the input file name of Together batch %s (asked again at "
                            "the next poll): %s",
                            batch.id,
                            exc,
                        )
                        continue
                    self.log.warning(
                        "Could not read the input file name of Together batch %s: %s", batch.id, exc
                    )
            if self.name_prefix is not None and not (name or "").startswith(self.name_prefix):
                continue
            self.log.info("Together batch %s finished %s (input %r)", batch.id, batch.status.value, name)
            yield TriggerEvent(finished_event(batch, name))
            self.state.mark(batch.id, finished)

    def commit(self) -> Commit | None:
        """The write of the watermark as it is now, or None when the store already holds it."""
        if self.store is None:
            return None
        value = self.state.to_json()
        if value == self.durable:
            return None

        async def write() -> None:
            try:
                await self.store.aset(self.key, value)
            except Exception as exc:
                # Written again after the next poll: a store that is down costs a duplicate after a
                # restart at worst, never a missed batch.
                self.log.warning("Could not save the watcher's watermark %r: %s", self.key, exc)
            else:
                self.durable = value

        return write


class BatchFinishedTrigger(OffLoopLogging, BaseEventTrigger):
    """Fires once per Together batch that reaches one of ``statuses``, for ``AssetWatcher``.

    Each event's payload (the asset event's ``extra["payload"]``) holds ``batch_id``, ``status``,
    ``output_file_id``, ``error_file_id``, ``error``, ``progress`` (the sensor's fields),
    ``created_at`` and ``completed_at`` (ISO-8601), ``input_file_id`` and ``input_file_name``. See the
    module docstring for how batches are found and what exactly once means across restarts.

    :param together_conn_id: the Airflow connection holding the API key (looked up in the triggerer,
        never in the kwargs).
    :param name_prefix: only batches whose input file's name starts with this (e.g. the prefix an app
        gives its uploads); None watches every batch of the account.
    :param statuses: the terminal statuses to fire on: any of COMPLETED, FAILED, EXPIRED, CANCELLED.
    :param poll_interval: seconds between polls of the batch list. Watchers with the same connection
        and interval share one poll on Airflow 3.3+.
    :param since: an ISO-8601 datetime (naive means UTC): also fire for batches that finished since then,
        before the watcher first started. None fires only for batches that finish after it first started.
        Changing it (or the connection, prefix or statuses) starts a new watermark.
    :param clock: wall-clock time in seconds (default ``time.time``): when the watcher first started;
        not serialized.
    :param sleep: the coroutine function the standalone poll sleeps with (default the loop share's);
        not serialized. The shared poll always sleeps with the loop share's.
    """

    def __init__(
        self,
        *,
        together_conn_id: str = "together_default",
        name_prefix: str | None = None,
        statuses: Iterable[str] | str = ("COMPLETED",),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        since: str | datetime | None = None,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        # First: before Airflow 3.0 this raises, saying event-driven scheduling needs 3.0+.
        super().__init__()
        self._clock = clock or time.time
        self._sleep = sleep
        if not together_conn_id or not str(together_conn_id).strip():
            raise ValueError(f"together_conn_id must be a non-empty string, got {together_conn_id!r}")
        self.together_conn_id = str(together_conn_id).strip()
        self.name_prefix = checked_name_prefix(name_prefix)
        self.statuses = checked_statuses(statuses)
        self.poll_interval = checked_poll_interval(poll_interval)
        self.since = checked_since(since)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "together_conn_id": self.together_conn_id,
                "name_prefix": self.name_prefix,
                "statuses": list(self.statuses),
                "poll_interval": self.poll_interval,
                "since": self.since,
            },
        )

    @property
    def state_key(self) -> str:
        """Where this watcher's watermark sits in its asset's state store: one per selection, so two
        watchers of one asset never share one, and a poll interval change keeps it."""
        selection = [self.together_conn_id, self.name_prefix, sorted(self.statuses), self.since]
        digest = hashlib.sha256(json.dumps(selection).encode()).hexdigest()[:16]
        return f"{STATE_KEY_PREFIX}.{digest}"

    def shared_stream_key(self) -> Hashable | None:
        return (STREAM, self.together_conn_id, self.poll_interval)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        return BatchListProducer(kwargs["together_conn_id"], checked_poll_interval(kwargs["poll_interval"]))

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        # Ack mode (create_shared_stream_producer) replaces this on 3.3; kept for a runner without it.
        producer = cls.create_shared_stream_producer(kwargs)
        async for snapshot, _ in producer.open_stream():
            yield snapshot

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        watch = await self._start()
        async for snapshot in shared_stream:
            async for event in watch.select(snapshot):
                yield event
            commit = watch.commit()
            if commit is not None:
                snapshot.commits.append(commit)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """A poll of its own: Airflow 3.0-3.2 (no shared streams, no state store), or a 3.3 triggerer
        that could not place it in a shared one. The watermark is written after the poll's events
        were handed over, not confirmed stored: a crash in between can lose those events (3.3 only)."""
        heap.freeze_once()
        watch = await self._start()
        sleep = self._sleep or loop_share.current().sleep
        async for snapshot in poll_batches(self.together_conn_id, self.poll_interval, sleep):
            async for event in watch.select(snapshot):
                yield event
            commit = watch.commit()
            if commit is not None:
                await commit()

    async def _start(self) -> _Watch:
        """The watermark from the asset state store (3.3+), or a fresh one from now or ``since``."""
        store = getattr(self, "asset_state_store", None)
        key = self.state_key
        raw = None
        if store is not None:
            try:
                raw = await store.aget(key)
            except ValueError as exc:
                # The same watcher on several assets: the store has no one place for its watermark.
                self.log.warning("Keeping the watermark in memory only: %s", exc)
                store = None
        state = WatchState.from_json(raw) if raw is not None else None
        if raw is not None and state is None:
            self.log.warning("Ignoring an unreadable watermark %r: %r", key, raw)
        resumed = state is not None
        if state is None:
            start = _parse(self.since) if self.since else datetime.fromtimestamp(self._clock(), UTC)
            state = WatchState.fresh(start)
            if store is not None:
                # Before anything is emitted: a restart must keep the first start, or batches that
                # finished while the triggerer was down would count as finished before it.
                await store.aset(key, state.to_json())
        self.log.info(
            "Watching Together batches on %r (%s%s) finished since %s%s",
            self.together_conn_id,
            "/".join(self.statuses),
            f", input names starting {self.name_prefix!r}" if self.name_prefix else "",
            _iso(state.floor),
            ", resumed from the asset state store" if resumed else "",
        )
        return _Watch(state, store, key, self.statuses, self.name_prefix, self.log)
