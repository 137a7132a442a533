"""The worst status of a merged result set, and rows merged across parts."""

from __future__ import annotations

from together_provider.client.models import BatchJob
from together_provider.client.results import merge_parts, worst_status


def job(batch_id, status, **fields):
    return BatchJob.from_api({"id": batch_id, "status": status, **fields})


def test_worst_status_and_merge_across_parts():
    assert worst_status(["COMPLETED", "COMPLETED"]) == "COMPLETED"
    assert worst_status(["COMPLETED", "CANCELLED", "EXPIRED"]) == "EXPIRED"
    assert worst_status(["FAILED", "EXPIRED", "COMPLETED"]) == "FAILED"
    parts = [
        ("p1", [{"custom_id": "x"}, {"custom_id": "y"}]),
        ("p2", [{"custom_id": "y"}, {"custom_id": "z"}]),
    ]
    assert [r["custom_id"] for r in merge_parts(parts)] == ["x", "y", "z"]
