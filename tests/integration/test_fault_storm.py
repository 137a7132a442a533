"""100 waits through a 30% fault rate: every one reaches its batch's real outcome. No false failure,
no false success."""

from __future__ import annotations

import asyncio
from collections import Counter

from together_provider.hooks.together import TogetherHook
from together_provider.triggers.batch import BatchStatusTrigger

from ..conftest import connection_uri_env
from ..helpers import write_requests

MIX = {
    "storm/ok": ("COMPLETED", False),
    "emulator/request-error": ("COMPLETED", True),
    "emulator/batch-fail": ("FAILED", None),
    "emulator/batch-expire": ("EXPIRED", None),
}


def test_hundred_waits_through_thirty_percent_faults(together_conn, emu, tmp_path, monkeypatch):
    # A budget far above the storm's pace: this test is about faults, not pacing.
    monkeypatch.setenv(
        "AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, max_requests_per_second=1000)
    )
    hook = TogetherHook()
    expected = {}
    # Long enough that every wait polls several times through the faults.
    emu.set_clock(processing_seconds=4.0)
    for i in range(100):
        model = list(MIX)[i % len(MIX)]
        src = write_requests(tmp_path / f"s{i}.jsonl", n=1, model=model)
        expected[hook.create_batch(hook.upload_file(src).id).id] = MIX[model]

    emu.clear_requests_log()
    emu.set_faults(
        rate=0.3,
        seed=7,
        kinds=["status", "drop", "malformed", "html"],
        statuses=[429, 500, 502, 503, 504],
        random_path="^/v1/batches/",
        random_method="GET",
    )

    async def wait_all():
        async def one(batch_id):
            async for event in BatchStatusTrigger(batch_id=batch_id, poll_interval=0.2).run():
                return event.payload

        return await asyncio.gather(*(one(b) for b in expected))

    try:
        events = asyncio.run(wait_all())
    finally:
        emu.clear_faults()
        emu.set_clock(processing_seconds=0.6)
    log = emu.requests_log(method="GET")
    faulted = Counter(entry["fault"] for entry in log if entry.get("fault"))
    seen = Counter(e["status"] for e in events)
    wrong = [
        (e["batch_id"], e["status"], expected[e["batch_id"]])
        for e in events
        if e["status"] != expected[e["batch_id"]][0]
        or (expected[e["batch_id"]][1] is not None and bool(e["error_file_id"]) != expected[e["batch_id"]][1])
    ]
    print(f"\n{len(log)} polls, {sum(faulted.values())} faulted {dict(faulted)}; outcomes {dict(seen)}")
    assert len(log) > 300 and sum(faulted.values()) > 0.2 * len(log)
    assert wrong == []
    assert seen == Counter({"COMPLETED": 50, "FAILED": 25, "EXPIRED": 25})
