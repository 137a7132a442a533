"""Bench-only (item 17): on the PYTHONPATH of the stack's Airflow processes when BENCH_GC_LOG names a
directory, every garbage collection of at least 20 ms is appended to ``<dir>/gc-<pid>.log`` as
``<unix time> <generation> <seconds> <collected>``, so a loop stall can be matched with a collection.
Changes no behaviour; a collection under 20 ms costs one perf_counter call."""

from __future__ import annotations

import gc
import os
import time

_DIR = os.environ.get("BENCH_GC_LOG")
_MIN = 0.020
_started = [0.0]


def _probe(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    if took < _MIN:
        return
    try:
        with open(os.path.join(_DIR or ".", f"gc-{os.getpid()}.log"), "a") as sink:
            sink.write(f"{time.time():.3f} {info.get('generation')} {took:.4f} {info.get('collected')}\n")
    except OSError:
        pass


if _DIR:
    gc.callbacks.append(_probe)
