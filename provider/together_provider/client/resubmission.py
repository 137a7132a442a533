"""Finding the batch an earlier try of the same task already submitted, so a retry never pays twice.

Together has no idempotency key, so the key travels in the uploaded file's name: a hash of the task
instance's identity within its DAG run (never the try number) and of the input's content. A new try
looks for a file with that name and a batch made from it before creating anything.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from together_provider.client.models import BatchJob, TogetherFile

# Together's clock and the worker's may disagree a little; a batch created this long before the DAG run
# started is still considered when the file name cannot tell (a file shared through content dedupe).
CLOCK_SKEW = timedelta(minutes=5)
_NAME_STEM_CHARS = 40


def run_key(dag_id: str, run_id: str, task_id: str, map_index: int | None) -> str:
    """Stable across retries, clears and worker crashes of one task instance; new for a new DAG run."""
    identity = f"{dag_id}\x1f{run_id}\x1f{task_id}\x1f{-1 if map_index is None else map_index}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def run_key_from_context(context: Any) -> str:
    ti = context["ti"]
    return run_key(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1))


def upload_name(
    path: str, key: str, sha256: str, part: tuple[int, int] | None = None, round_number: int = 0
) -> str:
    """``<stem>.af-<run key>-<content hash>.jsonl``: readable in a file list, one per task instance.

    :param part: ``(number, total)`` for one part of a split input (``SubmitBatchOperator(split=True)``):
        ``<stem>.af-<run key>-p003of004-<part's hash>.jsonl``, one per part of the task instance.
    :param round_number: a repair round's input (``BatchResultsOperator(retry_failed_requests=N)``):
        ``<stem>.af-<run key>-r02-...``, so a retry of the task finds the round's batch, not another's.
    """
    stem = os.path.basename(path).rsplit(".", 1)[0][:_NAME_STEM_CHARS] or "batch"
    if round_number:
        key = f"{key}-r{round_number:02d}"
    if part is None:
        return f"{stem}.af-{key}-{sha256[:12]}.jsonl"
    number, total = part
    width = max(3, len(str(total)))
    return f"{stem}.af-{key}-p{number:0{width}d}of{total:0{width}d}-{sha256[:12]}.jsonl"


def usable(batch: BatchJob) -> bool:
    """A batch worth reusing: still running, or completed. A failed one is final, and clearing the task
    after it failed is a request for a new batch."""
    return not batch.status.is_failure


def find_previous_batch(
    batches: Iterable[BatchJob],
    *,
    named_file_ids: set[str],
    other_file_ids: set[str],
    run_started: datetime | None,
) -> BatchJob | None:
    """The newest usable batch made from one of our files.

    :param named_file_ids: files whose name carries this task instance's key: any batch on them is ours.
    :param other_file_ids: files that may be shared with other runs (an ``input_file_id`` given by the
        DAG author, or an identical upload the server deduplicated): only batches created since this
        DAG run started count.
    """

    def ours(batch: BatchJob) -> bool:
        if not usable(batch) or batch.input_file_id is None:
            return False
        if batch.input_file_id in named_file_ids:
            return True
        if batch.input_file_id not in other_file_ids or run_started is None or batch.created_at is None:
            return False
        return batch.created_at >= run_started - CLOCK_SKEW

    candidates = [batch for batch in batches if ours(batch)]
    if not candidates:
        return None
    return max(candidates, key=lambda b: (b.created_at is not None, b.created_at or datetime.min))


def files_named(files: Iterable[TogetherFile], name: str) -> set[str]:
    return {f.id for f in files if f.filename == name}
