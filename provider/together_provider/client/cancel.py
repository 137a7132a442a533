"""Cancel unless already finished: the decision, once, for the sync hook and the async client.

Written as a flow of calls (``call.Flow``): the hook's and the async client's ``_run`` make each call it
yields, with the retry policy, and hand back the answer (or throw the error in).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from together_provider.client import requests as api
from together_provider.client.errors import BadRequestError
from together_provider.client.models import BatchJob


@dataclass(frozen=True)
class CancelOutcome:
    """The batch after a cancel; ``requested`` is False when it had already finished (nothing done)."""

    batch: BatchJob
    requested: bool


def cancel_flow(batch_id: str) -> Generator[api.ApiRequest[BatchJob], BatchJob, CancelOutcome]:
    try:
        batch = yield api.cancel_batch(batch_id)
    except BadRequestError:
        # Together refuses to cancel a batch that has finished, and a cancel whose first answer was
        # lost (and was retried) finds its own batch CANCELLED: neither is a failure of the caller's.
        batch = yield api.get_batch(batch_id)
        if not batch.status.is_terminal:
            raise
        return CancelOutcome(batch, requested=False)
    return CancelOutcome(batch, requested=True)


def describe(outcome: CancelOutcome) -> str:
    """One truthful log line for either outcome."""
    batch = outcome.batch
    if outcome.requested:
        return f"Requested cancellation of Together batch {batch.id} (now {batch.raw_status})"
    return f"Together batch {batch.id} had already ended {batch.raw_status}; nothing to cancel"
