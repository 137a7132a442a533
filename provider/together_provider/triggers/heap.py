"""The triggerer's garbage collector: once per triggerer process, when the provider's first wait starts
there, everything alive is moved out of the collector's reach (``gc.freeze()``).

A full (oldest-generation) collection walks every object the process tracks. In Airflow's triggerer
that is mostly Airflow itself (its modules, the runner, the supervisor's client), a heap of hundreds of
megabytes that no wait will ever free, and a full collection of it stops every trigger for longer than
the triggerer's 0.2 s "blocked" warning (``benchmarks/README.md``, item 17). Frozen, that heap is left
out of every later collection, which then walk only what came after it: the waits and what Airflow keeps
per trigger. Objects alive at the freeze are still freed when their last reference goes; only a
reference cycle among them would now outlive the process's need for it, and that is the startup state
the freeze is for. Airflow does the same in its DAG processor.

It happens only in Airflow's triggerer (never in ``dag.test()``, a worker or a test process) and once;
``[together] freeze_triggerer_heap = False`` (``AIRFLOW__TOGETHER__FREEZE_TRIGGERER_HEAP=false``) turns
it off.
"""

from __future__ import annotations

import contextvars
import gc
import logging
import os

from together_provider.triggers.log import OffLoopLogger

log = OffLoopLogger(logging.getLogger(__name__))
_frozen_in: list[int] = []


def freeze_once(*, in_triggerer: bool | None = None) -> bool:
    """Freeze the heap if this is a triggerer process that has not frozen it yet; True when it did."""
    pid = os.getpid()
    if pid in _frozen_in:
        return False
    if in_triggerer is None:
        from together_provider._compat import in_triggerer as probe

        in_triggerer = probe()
    if not in_triggerer or not enabled():
        return False
    _frozen_in.append(pid)
    gc.freeze()
    # An empty context: the line is the triggerer's, not the log of the trigger that happened to be first.
    contextvars.Context().run(
        log.info,
        "Moved %d objects of this triggerer out of the garbage collector's reach",
        gc.get_freeze_count(),
    )
    return True


def enabled() -> bool:
    from together_provider._compat import conf

    return conf.getboolean("together", "freeze_triggerer_heap", fallback=True)
