"""Operators for a Together batch's whole life: submit (upload + create), get, cancel, download."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from together_provider._compat import AirflowFailException, Context, xcom_push
from together_provider.client import resubmission
from together_provider.client.ids import checked_id, clean_id, require_id
from together_provider.client.models import checked_endpoint
from together_provider.client.polling import checked_poll_interval
from together_provider.client.split import MAX_BYTES_PER_BATCH, MAX_REQUESTS_PER_BATCH, checked_limits
from together_provider.links import TogetherBatchLink
from together_provider.tasks import storage, submission
from together_provider.tasks.base import TogetherTask, cancel_quietly
from together_provider.tasks.outcome import finish_wait
from together_provider.tasks.waiting import BatchWait, default_deferrable, default_timeout, push_batch_url

if TYPE_CHECKING:
    from together_provider.client.models import BatchJob

DEFAULT_ENDPOINT = "/v1/chat/completions"
# Renaming this breaks resumption of tasks in flight during an upgrade: their stores hold this key.
STATE_BATCH_ID = "together_batch_id"
# split=True: the list of every part's batch, in input order, once all were created.
STATE_BATCH_IDS = "together_batch_ids"


def _split_limits(
    split: bool,
    max_requests: int | None,
    max_bytes: int | None,
    input_file_id: str | None,
    wait_for_completion: bool,
) -> tuple[int, int]:
    """SubmitBatchOperator's per-part limits; ValueError for split arguments that cannot work."""

    if not split:
        if max_requests is not None or max_bytes is not None:
            raise ValueError(
                "max_requests_per_batch and max_bytes_per_batch apply only to a split input: pass "
                "split=True, or drop them"
            )
        return MAX_REQUESTS_PER_BATCH, MAX_BYTES_PER_BATCH
    if input_file_id is not None:
        raise ValueError(
            "split=True cuts a JSONL file read by the task: give input_file_path, not input_file_id "
            "(a file already uploaded to Together is within the limits, or Together refuses it)"
        )
    if wait_for_completion:
        raise ValueError(
            "split=True returns a list of batch ids, and wait_for_completion waits on one batch: drop "
            "wait_for_completion and wait on all parts in a task of their own, "
            "BatchCompletionSensor(task_id=..., batch_id=submit.output)"
        )
    return checked_limits(
        MAX_REQUESTS_PER_BATCH if max_requests is None else max_requests,
        MAX_BYTES_PER_BATCH if max_bytes is None else max_bytes,
    )


class _OneBatchOperator(TogetherTask):
    template_fields: Sequence[str] = ("batch_id", "together_conn_id")
    operator_extra_links = (TogetherBatchLink(),)

    def __init__(self, *, batch_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id

    def _on_batch(self, context: Context, call: Callable[[str], BatchJob]) -> BatchJob:
        """``call`` on the rendered batch id, under the provider's error rules; links the batch."""
        with self.task_errors():
            batch = call(require_id(self.batch_id, "batch_id"))
        push_batch_url(context, self.hook, batch.id)
        return batch


class GetBatchOperator(_OneBatchOperator):
    """Fetch a batch. Returns it as a JSON-safe dict and pushes ``status``, ``output_file_id`` and
    ``error_file_id`` to XCom.

    :param batch_id: the batch to fetch (templated).
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        batch = self._on_batch(context, self.hook.get_batch)
        data = batch.to_xcom()
        for key in ("status", "output_file_id", "error_file_id"):
            xcom_push(context["ti"], key, data[key])
        self.log.info("Together batch %s is %s (progress %s)", batch.id, data["status"], batch.progress)
        return data


class CancelBatchOperator(_OneBatchOperator):
    """Cancel a batch that is still validating or running. A batch that already finished is left as it
    is (and logged), so a cancel task is safe to re-run. Returns the batch as a JSON-safe dict.

    :param batch_id: the batch to cancel (templated).
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        return self._on_batch(context, self.hook.cancel_batch).to_xcom()


class DownloadBatchFileOperator(TogetherTask):
    """Stream a Together file (a batch's output or error file) to a local path or object storage and
    return where it landed. The file is written under a temporary name, checked against the announced
    length and moved into place, so ``path`` never holds a partial download. How-to guide:
    :doc:`/operators/download_batch_file`.

    :param file_id: the file to fetch (templated), e.g.
        ``"{{ ti.xcom_pull('wait_for_batch', key='output_file_id') }}"``.
    :param path: where to write it (templated): a local path (parent folders are created), a URL
        Airflow's ``ObjectStoragePath`` understands (``file:///...``, ``s3://conn_id@bucket/key``) or an
        ``ObjectStoragePath``.
    :param allow_missing: when ``file_id`` is empty (a batch with no error file, say), return None
        instead of failing.
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    template_fields: Sequence[str] = ("file_id", "path", "together_conn_id")

    def __init__(self, *, file_id: str | None, path: Any, allow_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_id = file_id
        self.path = path
        self.allow_missing = allow_missing

    def execute(self, context: Context) -> str | None:
        file_id = clean_id(self.file_id)
        if file_id is None:
            if self.allow_missing:
                self.log.info("No file id given (the batch has no such file); nothing to download")
                return None
            raise AirflowFailException(
                "file_id is empty: pass a Together file id, e.g. the sensor's XCom "
                "'output_file_id', or set allow_missing=True for a file that may not exist"
            )
        if not self.path or not str(self.path).strip():
            raise AirflowFailException(
                "path is empty: give the local path or object storage URL to write the download to"
            )

        with self.task_errors():
            file_id = checked_id(file_id, "file_id")
            where = storage.download(self.hook, file_id, self.path)
        self.record_lineage(input_file_ids=[file_id], output_locations=[where])
        return where


class SubmitBatchOperator(TogetherTask):
    """Submit a batch: validate and upload a JSONL input file (or reuse an uploaded one), create the
    batch, and return its id. ``batch_id`` is pushed to XCom before any wait. A retry, a clear or a
    worker crash re-attaches to the batch an earlier try created instead of submitting it again.

    With ``wait_for_completion=True`` the task then waits like
    :class:`~together_provider.sensors.batch.BatchCompletionSensor`, with the
    same outcomes and XComs; with ``split=True`` it submits an input past the API's limits as several
    batches and returns their ids. How-to guide: :doc:`/operators/submit_batch`.

    :param input_file_path: the JSONL file to validate and upload (templated): a local path, a URL
        Airflow's ``ObjectStoragePath`` understands (``file:///...``, ``s3://conn_id@bucket/key``) or an
        ``ObjectStoragePath``. Give this or ``input_file_id``.
    :param input_file_id: an already uploaded Together file to use instead (templated).
    :param endpoint: the API the requests target; ``/v1/chat/completions`` by default.
    :param completion_window: passed to Together, which currently ignores it (the window is 24 h).
    :param priority: optional batch priority.
    :param model_id: optional model id recorded on the batch (each line names its own model).
    :param wait_for_completion: wait until the batch ends, and fail as the sensor does.
    :param deferrable: wait in the triggerer rather than on the worker. Defaults to Airflow's
        ``[operators] default_deferrable``, and to True where that is not set.
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: seconds to wait in all (default: the sensor default, at least 72 h).
    :param fail_on_request_errors: fail when a completed batch has an error file.
    :param max_consecutive_failures: while waiting, polls in a row that may fail on transient errors
        (after the client's own retries) before the task fails.
    :param force_new: always create a new batch, even when an earlier try of this task instance
        already submitted one (by default a retry, a clear or a worker crash reuses that batch).
    :param adaptive_polling: while deferred, poll sooner when the batch's progress rate says it is
        about to finish and later when far from it (between 1/4 and 2x ``poll_interval``).
    :param cancel_on_kill: cancel the batch when the task is killed or marked failed, also while its
        wait is deferred (this operator owns the batch it created).
    :param split: take an input past the Batch API's per-file limits (50,000 requests, 100 MB): validate
        it as a whole, cut it into parts under ``max_requests_per_batch`` and ``max_bytes_per_batch`` and
        create a batch for each; the task then returns the list of batch ids in input order (also the
        XCom ``batch_ids``). Needs ``input_file_path``; not with ``wait_for_completion``.
    :param max_requests_per_batch: with ``split``, at most this many requests per part (1 to 50,000,
        the default).
    :param max_bytes_per_batch: with ``split``, at most this many bytes per part (1 to 100 MB, the
        default).
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    template_fields: Sequence[str] = (
        "input_file_path",
        "input_file_id",
        "endpoint",
        "model_id",
        "together_conn_id",
    )
    operator_extra_links = (TogetherBatchLink(),)

    def __init__(
        self,
        *,
        input_file_path: str | None = None,
        input_file_id: str | None = None,
        endpoint: str = DEFAULT_ENDPOINT,
        completion_window: str | None = None,
        priority: int | None = None,
        model_id: str | None = None,
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        fail_on_request_errors: bool = False,
        max_consecutive_failures: int = 5,
        force_new: bool = False,
        cancel_on_kill: bool = True,
        adaptive_polling: bool = True,
        split: bool = False,
        max_requests_per_batch: int | None = None,
        max_bytes_per_batch: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (input_file_path is None) == (input_file_id is None):
            raise ValueError("give exactly one of input_file_path (a local JSONL file) or input_file_id")
        self.split = split
        self.max_requests_per_batch, self.max_bytes_per_batch = _split_limits(
            split, max_requests_per_batch, max_bytes_per_batch, input_file_id, wait_for_completion
        )
        poll_interval = checked_poll_interval(poll_interval)
        self.input_file_path = input_file_path
        self.input_file_id = input_file_id
        self.endpoint = endpoint
        self.completion_window = completion_window
        self.priority = priority
        self.model_id = model_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = poll_interval
        self.timeout = timeout if timeout is not None else default_timeout()
        self.fail_on_request_errors = fail_on_request_errors
        self.max_consecutive_failures = max_consecutive_failures
        self.force_new = force_new
        self.cancel_on_kill = cancel_on_kill
        self.adaptive_polling = adaptive_polling
        self._batch_id: str | None = None
        self._batch_ids: list[str] = []
        self._input_models: list[str] = []

    def _submit(self, context: Context) -> list[submission.Submitted]:
        """Create the batch (one per part with ``split=True``), unless an earlier try of this task
        instance already did."""

        checked_endpoint(self.endpoint)
        store = submission.task_state_store(context)
        state_key = STATE_BATCH_IDS if self.split else STATE_BATCH_ID
        if store is not None and not self.force_new:
            stored = submission.stored_batches(self.hook, store, state_key, self.log)
            if stored:
                return [submission.Submitted(batch, batch.input_file_id) for batch in stored]
        made = submission.submit_parts(
            self.hook,
            self._parts(context),
            create=self._create_batch,
            retry=submission.is_retry(context, self.force_new),
            run_started=submission.run_started(context),
            log=self.log,
        )
        if store is not None:
            ids = [done.batch.id for done in made]
            store.set(state_key, ids if self.split else ids[0])
        return made

    def _parts(self, context: Context) -> list[submission.PartInput]:
        """The input, validated, as the parts to submit: the Together file given, the whole local or
        object storage file, or (``split=True``) its parts."""

        given_id = clean_id(self.input_file_id)
        if given_id is not None:
            return [submission.PartInput(file_id=checked_id(given_id, "input_file_id"))]
        if not self.input_file_path or not str(self.input_file_path).strip():
            raise ValueError("input_file_path is empty: give the path of the JSONL file to submit")
        source = storage.input_file(self.input_file_path, field="input_file_path")
        key = resubmission.run_key_from_context(context)
        if not self.split:
            summary = storage.validate_input(source, endpoint=self.endpoint)
            self.log.info(
                "Validated %s: %d requests, %d bytes, models %s",
                summary.path,
                summary.lines,
                summary.bytes,
                sorted(summary.models),
            )
            self._input_models = sorted(summary.models)
            return [
                submission.PartInput(
                    name=resubmission.upload_name(summary.path, key, summary.sha256),
                    sha256=summary.sha256,
                    content=lambda: storage.upload_content(source),
                )
            ]
        plan = storage.plan_split(
            source,
            endpoint=self.endpoint,
            max_requests=self.max_requests_per_batch,
            max_bytes=self.max_bytes_per_batch,
        )
        total = len(plan.parts)
        self.log.info(
            "Validated %s: %d requests, %d bytes, models %s; %d part(s) of at most %d requests and %d bytes",
            plan.path,
            plan.lines,
            plan.bytes,
            sorted(plan.models),
            total,
            self.max_requests_per_batch,
            self.max_bytes_per_batch,
        )
        self._input_models = sorted(plan.models)
        return [
            submission.PartInput(
                name=resubmission.upload_name(plan.path, key, part.sha256, part=(part.number, total)),
                sha256=part.sha256,
                content=functools.partial(storage.upload_part, source, part),
                label=(
                    f"Part {part.number}/{total} (lines {part.first_line}-{part.first_line + part.lines - 1})"
                ),
            )
            for part in plan.parts
        ]

    def _create_batch(self, input_file_id: str) -> BatchJob:
        return self.hook.create_batch(
            input_file_id,
            endpoint=self.endpoint,
            completion_window=self.completion_window,
            priority=self.priority,
            model_id=self.model_id,
        )

    def _execute_split(self, context: Context) -> list[str]:
        with self.task_errors():
            made = self._submit(context)
        batch_ids = [done.batch.id for done in made]
        self._batch_ids = batch_ids
        self.record_lineage(
            input_locations=[str(self.input_file_path)],
            output_file_ids=[done.file_id for done in made if done.file_id],
            batch_id=batch_ids[0] if batch_ids else None,
            status=made[0].batch.raw_status if made else None,
            endpoint=self.endpoint,
            models=self._input_models or ([self.model_id] if self.model_id else []),
        )
        context["ti"].xcom_push(key="batch_ids", value=batch_ids)
        return batch_ids

    def execute(self, context: Context) -> str | list[str]:
        if self.split:
            return self._execute_split(context)
        with self.task_errors():
            batch = self._submit(context)[0].batch
        self._batch_id = batch.id
        self._record_submit_lineage(batch.id, batch.raw_status, batch.input_file_id)
        context["ti"].xcom_push(key="batch_id", value=batch.id)
        push_batch_url(context, self.hook, batch.id)
        if self.wait_for_completion:
            if self.deferrable:
                self.wait.defer(self, batch.id)
            with self.task_errors():
                event = self.wait.run_on_worker(self.hook, batch.id, self.log)
            self._finish(context, event)
        return batch.id

    @property
    def wait(self) -> BatchWait:
        return BatchWait.of(self)

    def _finish(self, context: Context, event: dict[str, Any]) -> None:
        result = finish_wait(context, event, fail_on_request_errors=self.fail_on_request_errors, log=self.log)
        lineage = self._lineage
        if lineage is not None:
            lineage.output_file_ids += [
                fid for fid in (result.get("output_file_id"), result.get("error_file_id")) if fid
            ]
            lineage.status = result.get("status") or lineage.status

    def on_kill(self) -> None:
        """The task was killed while this worker ran it (marked failed, timed out): cancel the batch it
        owns, unless ``cancel_on_kill=False``. A deferred wait cancels from the trigger instead."""
        if self.cancel_on_kill and self._batch_id:
            cancel_quietly(self.hook, self._batch_id, self.log)
        if self.cancel_on_kill:
            for batch_id in self._batch_ids:
                cancel_quietly(self.hook, batch_id, self.log)

    def _record_submit_lineage(self, batch_id: str, status: str | None, input_file_id: str | None) -> None:
        """The input read (a path or URL, or the Together file given) and the Together file it became;
        a wait adds the batch's output and error files (:meth:`_finish`)."""
        given = clean_id(self.input_file_id)
        self.record_lineage(
            input_locations=[] if given else [str(self.input_file_path)],
            input_file_ids=[given] if given else [],
            output_file_ids=[input_file_id] if input_file_id and not given else [],
            batch_id=batch_id,
            status=status,
            endpoint=self.endpoint,
            models=self._input_models or ([self.model_id] if self.model_id else []),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        # A fresh operator resumes here: what execute noted is gone. The event names the batch and its
        # result files, not the Together input file, so lineage after a deferral leaves that one out.
        self._record_submit_lineage(str(event.get("batch_id")), None, None)
        self._finish(context, event)
        return str(event["batch_id"])
