"""The triggers' log lines leave the event loop (together_provider/triggers/log.py): a sink that blocks
(Airflow's triggerer writes each line to a socket its supervisor may not be reading) holds the writer
thread, never the loop."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading

import pytest

from together_provider.triggers import log as trigger_log
from together_provider.triggers.log import OffLoopLogger, OffLoopLogging

TRIGGER_ID: contextvars.ContextVar[str] = contextvars.ContextVar("trigger_id", default="-")


class GatedHandler(logging.Handler):
    """Records each line with the context it was written in; blocks while ``gate`` is closed."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.lines: list[tuple[str, str, str, bool]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not self.gate.wait(30):
            raise AssertionError("the test never opened the gate")
        has_exc = bool(record.exc_info and record.exc_info[0])
        self.lines.append((record.getMessage(), TRIGGER_ID.get(), threading.current_thread().name, has_exc))


@pytest.fixture
def gated():
    logger = logging.getLogger("together-test-off-loop")
    handler = GatedHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, handler
    handler.gate.set()
    logger.removeHandler(handler)


def test_a_blocked_sink_holds_the_writer_thread_not_the_loop(gated):
    logger, handler = gated
    log = OffLoopLogger(logger)

    async def wait(trigger_id: str, polls: list[str]) -> None:
        TRIGGER_ID.set(trigger_id)
        log.info("Together batch %s: %s", trigger_id, "IN_PROGRESS")
        await asyncio.sleep(0)
        log.warning("Together batch %s: %s", trigger_id, "COMPLETED")
        polls.append(trigger_id)

    async def scenario() -> list[str]:
        polls: list[str] = []
        # Both waits log twice and finish while no line can be written.
        await asyncio.gather(wait("t1", polls), wait("t2", polls))
        assert handler.lines == []
        handler.gate.set()
        await trigger_log.drained()
        return polls

    assert asyncio.run(scenario()) == ["t1", "t2"]
    assert [(line, trigger) for line, trigger, _, _ in handler.lines] == [
        ("Together batch t1: IN_PROGRESS", "t1"),
        ("Together batch t2: IN_PROGRESS", "t2"),
        ("Together batch t1: COMPLETED", "t1"),
        ("Together batch t2: COMPLETED", "t2"),
    ]
    assert {thread for _, _, thread, _ in handler.lines} == {handler.lines[0][2]}
    assert handler.lines[0][2].startswith("together-log")


def test_an_exception_line_carries_the_callers_exception(gated):
    logger, handler = gated
    handler.gate.set()
    log = OffLoopLogger(logger)

    async def scenario() -> None:
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("Polling failed")
        log.info("no exception here", exc_info=False)
        await trigger_log.drained()

    asyncio.run(scenario())
    assert [(line, exc) for line, _, _, exc in handler.lines] == [
        ("Polling failed", True),
        ("no exception here", False),
    ]


def test_outside_a_running_loop_a_line_is_written_at_once(gated):
    logger, handler = gated
    handler.gate.set()
    OffLoopLogger(logger).info("from a worker")
    assert [(line, thread) for line, _, thread, _ in handler.lines] == [
        ("from a worker", threading.current_thread().name)
    ]


def test_the_trigger_mixin_wraps_the_classes_own_logger():
    class Base:
        @property
        def log(self):
            return logging.getLogger("together-test-base")

    class Trigger(OffLoopLogging, Base):
        pass

    trigger = Trigger()
    assert isinstance(trigger.log, OffLoopLogger)
    assert trigger.log is trigger.log
    assert trigger.log.name == "together-test-base"
