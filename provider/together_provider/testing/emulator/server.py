"""Running the emulator: as a site on the current loop, or in a background thread for synchronous tests."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from .app import create_app
from .state import EmulatorState

T = TypeVar("T")
_START_TIMEOUT = 30.0
_CALL_TIMEOUT = 60.0


async def start_site(
    state: EmulatorState, host: str, port: int, *, access_log: bool = False
) -> tuple[web.AppRunner, int]:
    """Serve ``state`` on ``host:port`` (0 picks a free port); returns the runner and the bound port."""
    kwargs: dict[str, Any] = {} if access_log else {"access_log": None}
    # A short shutdown timeout: "slow" faults must not hold up stopping the emulator.
    runner = web.AppRunner(create_app(state), handle_signals=False, shutdown_timeout=0.5, **kwargs)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return runner, bound_port


class EmulatorServer:
    """A Together-compatible Batch and Files API on a background thread with its own event loop.

    ``with EmulatorServer(api_key="test-key", validating_seconds=0.2, processing_seconds=0.5) as emu:``
    then point a client at ``emu.url`` (the API lives under ``emu.url + "/v1"``).
    """

    def __init__(
        self,
        api_key: str = "test-key",
        *,
        validating_seconds: float = 1.0,
        processing_seconds: float = 2.0,
        data_dir: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        max_requests_per_batch: int = 50_000,
        max_bytes_per_batch: int = 100 * 1024 * 1024,
    ) -> None:
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self._own_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self._settings: dict[str, Any] = {
            "validating_seconds": validating_seconds,
            "processing_seconds": processing_seconds,
            "latency_ms": latency_ms,
            "max_requests_per_batch": max_requests_per_batch,
            "max_bytes_per_batch": max_bytes_per_batch,
        }
        self._state: EmulatorState | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def state(self) -> EmulatorState:
        """The live state; touch it only through ``call`` or the helpers, it belongs to the server's loop."""
        if self._state is None:
            raise RuntimeError("the emulator is not running")
        return self._state

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            return self
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="together-emulator-"))
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._boot())
            except BaseException as exc:  # surfaced in start(), the thread would swallow it
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._finish_loop()

        self._thread = threading.Thread(target=run, name="together-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(_START_TIMEOUT) or failure:
            self._thread = None
            raise RuntimeError("the emulator did not start") from (failure[0] if failure else None)
        return self

    def _finish_loop(self) -> None:
        """Cancel what is still running (a "slow" fault mid-sleep, say) so the loop closes cleanly."""
        assert self._loop is not None
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    async def _boot(self) -> None:
        assert self.data_dir is not None
        self._state = EmulatorState(self.api_key, self.data_dir, **self._settings)
        self._runner, self.port = await start_site(self._state, self.host, self._requested_port)

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(_CALL_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_CALL_TIMEOUT)
        self._thread = self._runner = self._state = None
        self.port = None
        if self._own_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def call(self, fn: Callable[[EmulatorState], T | Awaitable[T]]) -> T:
        """Run ``fn(state)`` on the server's loop, where the state lives, and return its result."""
        state, loop = self.state, self._loop
        assert loop is not None

        async def invoke() -> T:
            result = fn(state)
            if asyncio.iscoroutine(result):
                return await result
            return result  # type: ignore[return-value]

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(_CALL_TIMEOUT)

    # Helpers for tests: the same operations as the /_emulator/ control routes.

    def reset(self) -> None:
        self.call(lambda state: state.reset())

    def set_faults(
        self,
        *rules: dict,
        rate: float | None = None,
        kinds: list[str] | None = None,
        seed: int | None = None,
        statuses: list[int] | None = None,
        append: bool = False,
        **random_options: Any,
    ) -> dict:
        """Install fault rules (see faults.FaultRule) and/or random faults at ``rate``; replaces all."""
        script: dict[str, Any] = {"rules": list(rules), "append": append}
        if rate is not None:
            script.update(rate=rate, kinds=kinds, seed=seed, statuses=statuses, **random_options)
        return self.call(lambda state: state.set_faults(script))

    def clear_faults(self) -> None:
        self.call(lambda state: state.set_faults({}))

    def faults(self) -> dict:
        return self.call(lambda state: state.faults.to_dict())

    def requests_log(self, method: str | None = None, path: str | None = None) -> list[dict]:
        """The request log, optionally only entries with this method and/or exactly this path."""
        entries = self.call(lambda state: [dict(entry) for entry in state.request_log])
        return [
            entry
            for entry in entries
            if (method is None or entry["method"] == method.upper())
            and (path is None or entry["path"] == path)
        ]

    def clear_requests_log(self) -> None:
        self.call(lambda state: state.request_log.clear())

    def set_batch_status(self, batch_id: str, status: str, error: str | None = None) -> dict:
        async def force(state: EmulatorState) -> dict:
            batch = state.batches.get(batch_id)
            if batch is None:
                raise KeyError(f"no batch {batch_id}")
            await state.force_status(batch, status, error)
            return batch.to_api()

        return self.call(force)

    def set_clock(
        self,
        *,
        validating_seconds: float | None = None,
        processing_seconds: float | None = None,
        latency_ms: float | None = None,
        advance_seconds: float | None = None,
    ) -> dict:
        values = {
            "validating_seconds": validating_seconds,
            "processing_seconds": processing_seconds,
            "latency_ms": latency_ms,
            "advance_seconds": advance_seconds,
        }
        return self.call(lambda state: state.set_clock(values))

    def set_limits(
        self, *, max_requests_per_batch: int | None = None, max_bytes_per_batch: int | None = None
    ) -> dict:
        """Per-batch limits for batches created afterwards (none given: just read them)."""
        values = {
            "max_requests_per_batch": max_requests_per_batch,
            "max_bytes_per_batch": max_bytes_per_batch,
        }
        return self.call(lambda state: state.set_limits(values))

    def advance_clock(self, seconds: float) -> dict:
        return self.set_clock(advance_seconds=seconds)

    def create_synthetic_file(
        self, size: int, purpose: str = "batch-generated", filename: str | None = None
    ) -> dict:
        async def create(state: EmulatorState) -> dict:
            return (await state.create_synthetic_file(size, purpose, filename)).to_api()

        return self.call(create)

    def file_path(self, file_id: str) -> Path:
        """Where a file's bytes sit on disk (tests use it to check that content is not held in memory)."""
        return self.call(lambda state: state.files[file_id].path)
