"""The triggerer's startup heap is frozen once (together_provider/triggers/heap.py). Freezing is for a
whole process, so the freezing cases run in a child process, never in the test session's own."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

from together_provider.triggers import heap

CHILD = """
import gc, json
from together_provider.triggers import heap
# What the interpreter or an import froze already (Python 3.12 starts with some) is not ours.
before = gc.get_freeze_count()
first = heap.freeze_once(in_triggerer=True)
count = gc.get_freeze_count() - before
second = heap.freeze_once(in_triggerer=True)
print(json.dumps({"first": first, "second": second, "frozen": count}))
"""


def _child(**env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_triggerer_freezes_its_heap_once():
    found = _child()
    assert found["first"] is True
    assert found["second"] is False
    assert found["frozen"] > 1000


def test_the_freeze_can_be_turned_off():
    assert _child(AIRFLOW__TOGETHER__FREEZE_TRIGGERER_HEAP="false") == {
        "first": False,
        "second": False,
        "frozen": 0,
    }


def test_a_process_that_is_not_a_triggerer_is_left_alone():
    before = gc.get_freeze_count()
    assert heap.freeze_once() is False
    assert gc.get_freeze_count() == before


def test_airflow_2s_triggerer_thread_is_recognised():
    import threading

    from together_provider._compat import AIRFLOW_V_3_0_PLUS, in_triggerer

    if AIRFLOW_V_3_0_PLUS:
        import pytest

        pytest.skip("Airflow 3's trigger runner is a process (the next test, and the e2e stack's triggerer)")
    from airflow.jobs.triggerer_job_runner import TriggerRunner

    seen: list[bool] = []

    class Probe(TriggerRunner):
        def run(self) -> None:
            seen.append(in_triggerer())

    probe = Probe()
    probe.start()
    probe.join(30)
    assert seen == [True]
    assert in_triggerer() is False
    other = threading.Thread(target=lambda: seen.append(in_triggerer()))
    other.start()
    other.join(30)
    assert seen == [True, False]


def test_airflow_3s_trigger_runner_is_recognised(monkeypatch):
    from together_provider import _compat

    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    if task_runner is None:
        import pytest

        pytest.skip("Airflow 2: its triggerer is a thread (the test above)")

    from airflow.jobs.triggerer_job_runner import TriggerCommsDecoder

    assert _compat.in_triggerer() is False
    # Only Airflow's own runner comms say so: a class of the same name does not.
    lookalike = type("TriggerCommsDecoder", (), {})()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", lookalike, raising=False)
    assert _compat.in_triggerer() is False
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", object.__new__(TriggerCommsDecoder), raising=False)
    assert _compat.in_triggerer() is True
