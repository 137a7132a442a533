"""A repair round as a task runs it (``BatchResultsOperator(retry_failed_requests=N)``): the round's input
streamed out of the previous round's input files, submitted so that a retry of the task finds the round's
batch instead of making a second one, and what the round's wait ended with.

The rules (which requests are sent again, how rows merge) are ``client/repair.py``'s.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

from together_provider._compat import AirflowException, AirflowFailException
from together_provider.client import resubmission
from together_provider.client.repair import select_requests
from together_provider.client.split import MAX_BYTES_PER_BATCH, MAX_REQUESTS_PER_BATCH
from together_provider.client.wait import EVENT_ERROR, EVENT_TIMEOUT, named
from together_provider.tasks import storage, submission

# The stem of a round's uploaded file; the run key and the round number make the name the task's own.
ROUND_FILE_STEM = "together-repair"


def round_input(
    hook: Any, batches: Iterable[Any], wanted: set[str], folder: str, log: Any
) -> tuple[str, int]:
    """Write the requests of ``wanted`` found in the batches' input files to a local JSONL file, streamed
    (memory holds one line); returns its path and how many lines it holds. Ids found in no input file are
    logged and left out (nothing can send them again)."""
    path = os.path.join(folder, f"{ROUND_FILE_STEM}.jsonl")
    count = 0
    with open(path, "wb") as out:
        for batch in batches:
            if not wanted:
                break
            if not batch.input_file_id:
                continue
            for line in select_requests(hook.iter_file_lines(batch.input_file_id), wanted):
                out.write(line)
                count += 1
    if wanted:
        log.warning(
            "%d requests to send again are in no input file of the batches, so they stay as they are: %s",
            len(wanted),
            named(sorted(wanted)),
        )
    return path, count


def submit_round(
    hook: Any,
    context: Any,
    path: str,
    *,
    round_number: int,
    endpoint: str | None,
    model_id: str | None,
    log: Any,
) -> list[Any]:
    """Validate the round's input, cut it into parts if it is past one batch's limits, and create a batch
    per part, reusing what an earlier try of the task made for this round."""
    plan = storage.plan_split(
        path, endpoint=endpoint, max_requests=MAX_REQUESTS_PER_BATCH, max_bytes=MAX_BYTES_PER_BATCH
    )
    total = len(plan.parts)
    key = resubmission.run_key_from_context(context)
    parts = [
        submission.PartInput(
            name=resubmission.upload_name(
                path,
                key,
                part.sha256,
                part=None if total == 1 else (part.number, total),
                round_number=round_number,
            ),
            sha256=part.sha256,
            content=functools.partial(storage.upload_part, path, part),
            label=f"Repair round {round_number}" + (f", part {part.number}/{total}" if total > 1 else ""),
        )
        for part in plan.parts
    ]
    made = submission.submit_parts(
        hook,
        parts,
        create=lambda file_id: hook.create_batch(
            file_id, endpoint=endpoint or "/v1/chat/completions", model_id=model_id
        ),
        retry=submission.is_retry(context, False),
        run_started=submission.run_started(context),
        log=log,
    )
    return [done.batch for done in made]


def check_round_wait(event: Any, round_number: int, rounds: int, where: str) -> None:
    """Raise what a round's wait that ended without its batches finishing means: a timeout or a broken
    connection fails the task (a retry when polling kept failing finds the round's batch again)."""
    if not isinstance(event, dict) or "status" not in event:
        raise AirflowException(
            f"repair round {round_number}: the wait ended with an event this provider cannot read"
        )
    status = str(event["status"])
    which = f"repair round {round_number} of {rounds}"
    if status == EVENT_TIMEOUT:
        raise AirflowFailException(
            f"{which}: {event.get('error') or 'timed out waiting'}; the rows of the earlier rounds are "
            f"landed at {where}"
        )
    if status == EVENT_ERROR:
        message = (
            f"{which}: waiting failed: {event.get('error')}; the rows of the earlier rounds are landed at "
            f"{where}"
        )
        if event.get("retryable"):
            raise AirflowException(message)
        raise AirflowFailException(message)
