"""Submitting batches so that a retry never pays twice: one algorithm for a plain submit (an input of one
part) and a split input (N parts).

Two records find what an earlier try made. On Airflow 3.3+ the task instance's ``task_state_store`` holds
the batch ids once all were created: a retry resumes them unless one has failed. Everywhere, the run key
travels in each uploaded file's name (``client/resubmission.py``): a retry lists files and batches once,
reuses a part's upload and the batch made from it, and creates only what is missing. (Airflow's
``ResumableJobMixin`` keeps one id and polls inside ``execute``; a submit that defers, or stores a list of
parts, does not fit it, so the store is read and written here, with the same rules: running or completed
is resumed, failed is submitted anew.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from together_provider.client import resubmission
from together_provider.client.errors import NotFoundError

if TYPE_CHECKING:
    from together_provider.client.models import BatchJob


@dataclass(frozen=True)
class PartInput:
    """One batch's input: a file already on Together (``file_id``), or content uploaded as ``name``."""

    file_id: str | None = None
    name: str = ""
    sha256: str = ""
    content: Callable[[], Any] | None = None
    # How the log names the part ("part 2/5 (lines 11-20)"); empty for an input of one part.
    label: str = ""


@dataclass(frozen=True)
class Submitted:
    batch: BatchJob
    file_id: str | None


def task_state_store(context: Any) -> Any:
    """Airflow 3.3+ keeps a per-task-instance store that survives retries; older versions have none."""
    try:
        return context.get("task_state_store")
    except Exception:
        return None


def is_retry(context: Any, force_new: bool) -> bool:
    """Whether an earlier try of this task instance may have submitted already."""
    return not force_new and (getattr(context["ti"], "try_number", 1) or 1) > 1


def run_started(context: Any) -> Any:
    dag_run = context.get("dag_run") if hasattr(context, "get") else None
    return getattr(dag_run, "start_date", None)


def stored_batches(hook: Any, store: Any, key: str, log: Any) -> list[BatchJob] | None:
    """The batches an earlier try recorded under ``key`` (one id or a list), when every one still exists
    and none has failed; else None, and the parts are looked for on the server."""
    value = store.get(key)
    ids = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if not ids:
        return None
    try:
        batches = [hook.get_batch(str(batch_id)) for batch_id in ids]
    except NotFoundError:
        return None
    failed = [batch for batch in batches if not resubmission.usable(batch)]
    if failed:
        log.info(
            "The batch %s of an earlier try ended %s; submitting anew", failed[0].id, failed[0].raw_status
        )
        return None
    if len(batches) == 1:
        log.info(
            "Resuming Together batch %s (%s) submitted by an earlier try",
            batches[0].id,
            batches[0].raw_status,
        )
    else:
        log.info("Resuming the %d Together batches submitted by an earlier try", len(batches))
    return batches


def submit_parts(
    hook: Any,
    parts: Sequence[PartInput],
    *,
    create: Callable[[str], BatchJob],
    retry: bool,
    run_started: Any,
    log: Any,
) -> list[Submitted]:
    """Upload each part unless an earlier try did, and create its batch unless an earlier try did; in
    input order. On a retry the account's files and batches are listed once for all parts."""
    files = hook.list_files() if retry and any(part.file_id is None for part in parts) else []
    listed = hook.list_batches() if retry else []
    made = []
    for part in parts:
        named = resubmission.files_named(files, part.name) if retry and part.file_id is None else set()
        where = f"{part.label}: " if part.label else ""
        if part.file_id is not None:
            file_id = part.file_id
        elif named:
            file_id = sorted(named)[0]
            log.info("%sAn earlier try already uploaded this input as file %s", where, file_id)
        else:
            assert part.content is not None, "a part without a file id has content"
            file_id = hook.upload_file(part.content(), file_name=part.name, checksum=part.sha256).id
        previous = (
            resubmission.find_previous_batch(
                listed, named_file_ids=named, other_file_ids={file_id} - named, run_started=run_started
            )
            if retry
            else None
        )
        if previous is not None:
            log.info(
                "%sReusing Together batch %s (%s) submitted by an earlier try of this task instead of "
                "creating another; pass force_new=True to submit a new one",
                where,
                previous.id,
                previous.raw_status,
            )
            made.append(Submitted(previous, file_id))
            continue
        batch = create(file_id)
        log.info("%sCreated Together batch %s (%s) from file %s", where, batch.id, batch.raw_status, file_id)
        made.append(Submitted(batch, file_id))
    return made
