"""The async half of the API for triggers: small enough to keep one per wait.

A triggerer may hold ten thousand waits. Building a ``TogetherHook`` for each would build an
``HttpHook`` (requests adapters, urllib3 retries) the event loop never uses, and resolving the
connection for each would spend about a millisecond of the loop per wait. This client holds only a
connection id: the session, the request budget and the resolved settings are the loop's (see
``loop_share``), so a wait costs its task and little more.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from together_provider._compat import get_connection_async, mask_secret
from together_provider.client import requests as api
from together_provider.client.call import Flow, run_async
from together_provider.client.cancel import CancelOutcome, cancel_flow
from together_provider.client.models import BatchJob, TogetherFile
from together_provider.client.settings import ConnectionSettings
from together_provider.hooks import loop_share
from together_provider.hooks.transports import send_async

T = TypeVar("T")
# How long the waits of one loop reuse a resolved connection. A changed key or host reaches running
# waits within this time; a lookup per poll would cost the loop more than the poll.
SETTINGS_TTL = 60.0

SettingsLookup = Callable[[str], Awaitable[ConnectionSettings]]


def settings_from(conn: Any, extra: dict[str, Any]) -> ConnectionSettings:
    settings = ConnectionSettings.from_parts(
        host=conn.host,
        schema=conn.schema,
        port=conn.port,
        password=conn.password,
        extra=extra,
        env=os.environ,
    )
    mask_secret(settings.api_key)
    return settings


def connection_lookup(hook: Any = None) -> SettingsLookup:
    """Resolves a connection without blocking the loop, wherever Airflow keeps it (environment,
    metadata DB, a secrets backend) and in every runner (see ``get_connection_async``); ``hook`` (a
    class or instance) is asked first, so a subclass's own connection lookup is honoured."""

    async def lookup(conn_id: str) -> ConnectionSettings:
        from airflow.providers.common.compat.connection import get_async_extra_dejson

        conn = await get_connection_async(conn_id, hook=hook)
        return settings_from(conn, await get_async_extra_dejson(conn))

    return lookup


class AsyncTogetherClient:
    """Batch and file calls on the running event loop, for one Airflow connection.

    Call :meth:`close` when done: the loop's shared session closes when its last user lets go.
    """

    __slots__ = ("_lookup", "_session", "_watched", "conn_id")

    def __init__(self, conn_id: str, lookup: SettingsLookup | None = None) -> None:
        self.conn_id = conn_id
        self._lookup = lookup or connection_lookup()
        self._session: Any = None
        self._watched: tuple[str, ...] | None = None

    async def settings(self) -> ConnectionSettings:
        lookup, conn_id = self._lookup, self.conn_id
        return await loop_share.current().once(("settings", conn_id), SETTINGS_TTL, lambda: lookup(conn_id))

    async def _run(self, request: api.ApiRequest[T] | Flow[T]) -> T:
        settings = await self.settings()
        share = loop_share.current()
        if self._session is None:
            self._session = share.acquire_session()
        session = self._session
        budget = share.budget(self.conn_id, settings.requests_per_second)

        async def send(req: api.ApiRequest[Any]) -> api.RawResponse:
            wait = budget.reserve(share.clock())
            if wait > 0:
                await share.sleep(wait)
            async with share.gate:
                return await send_async(session, settings, req)

        return await run_async(request, settings.retry, send, share.sleep, secrets=settings.secrets)

    async def get_batch(self, batch_id: str, *, max_age: float = 0.0) -> BatchJob:
        """The batch, shared with every other wait on it in this event loop: concurrent calls make one
        request, and an answer at most ``max_age`` seconds old is reused."""
        batch, _ = await self.get_batch_aged(batch_id, max_age=max_age)
        return batch

    async def get_batch_aged(self, batch_id: str, *, max_age: float = 0.0) -> tuple[BatchJob, float]:
        """:meth:`get_batch` and the answer's age in seconds (0 when fetched for this call)."""
        request = api.get_batch(batch_id)
        return await loop_share.current().once_aged(
            self._batch_key(batch_id), max_age, lambda: self._run(request)
        )

    def watch(self, batch_id: str) -> None:
        """Say this client waits on ``batch_id`` until :meth:`close`: answers for a batch that two
        or more clients of the loop watch are kept for ``max_age`` and shared."""
        if self._watched is None:
            self._watched = self._batch_key(batch_id)
            loop_share.current().watch(self._watched)

    def _batch_key(self, batch_id: str) -> tuple[str, ...]:
        return ("batch", self.conn_id, api.get_batch(batch_id).path)

    async def list_batches(self) -> list[BatchJob]:
        return await self._run(api.list_batches())

    async def cancel(self, batch_id: str) -> CancelOutcome:
        """Cancel unless already finished (see ``client/cancel.py``)."""
        return await self._run(cancel_flow(batch_id))

    async def cancel_batch(self, batch_id: str) -> BatchJob:
        return (await self.cancel(batch_id)).batch

    async def get_file(self, file_id: str) -> TogetherFile:
        return await self._run(api.get_file(file_id))

    async def close(self) -> None:
        if self._watched is not None:
            loop_share.current().unwatch(self._watched)
            self._watched = None
        if self._session is not None:
            self._session = None
            await loop_share.current().release_session()
