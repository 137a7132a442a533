"""Log lines of the provider's triggers, written by a thread rather than on the event loop.

In Airflow 3's triggerer a log line is a blocking write to a socket that the triggerer's supervisor
reads, and the supervisor reads nothing while it stores a burst of trigger events in the database (a
thousand waits finishing together). Once the socket's buffer is full, a line logged on the loop stops
every trigger in the process until the supervisor reads again: Airflow's "Triggerer's async thread was
blocked" warning. Here the loop hands the line to one writer thread and goes on; the line keeps the
caller's context variables (the trigger id that routes it to the task's log), and one thread keeps the
lines in the order they were logged. Outside a running event loop a line is written at once.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

_writer: tuple[int, ThreadPoolExecutor] | None = None


def _executor() -> ThreadPoolExecutor:
    # Per process: a triggerer's runner is forked, and a forked child has no copy of its parent's thread.
    global _writer
    if _writer is None or _writer[0] != os.getpid():
        _writer = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="together-log"))
    return _writer[1]


class OffLoopLogger:
    """``logger``'s ``debug`` ... ``exception``, written off the running loop; anything else is the
    logger's own."""

    __slots__ = ("_logger",)

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def _emit(
        self, method: str, msg: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Future[Any] | None:
        if method == "exception" or kwargs.get("exc_info") is True:
            # The writer thread has no exception of its own: take the caller's now.
            method = "error" if method == "exception" else method
            kwargs["exc_info"] = sys.exc_info()
        write = getattr(self._logger, method)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            write(msg, *args, **kwargs)
            return None
        return _executor().submit(contextvars.copy_context().run, write, msg, *args, **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("debug", msg, args, kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("info", msg, args, kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("warning", msg, args, kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("error", msg, args, kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self._emit("exception", msg, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger, name)


async def drained() -> None:
    """Wait (without blocking the loop) until every line logged so far in this process is written."""
    if _writer is not None and _writer[0] == os.getpid():
        await asyncio.wrap_future(_writer[1].submit(lambda: None))


class OffLoopLogging:
    """A trigger base: its ``log`` writes off the loop (see the module's docstring)."""

    @property
    def log(self) -> Any:
        wrapped = self.__dict__.get("_together_off_loop_log")
        if wrapped is None:
            wrapped = self.__dict__["_together_off_loop_log"] = OffLoopLogger(super().log)  # type: ignore[misc]
        return wrapped
