"""Operators for a Together batch's whole life: submit (upload + create), get, cancel, download."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from together_provider._compat import AirflowFailException, BaseOperator, Context
from together_provider.links import TogetherBatchLink
from together_provider.outcome import EVENT_TIMEOUT, finish_wait
from together_provider.waiting import default_timeout, push_batch_url

if TYPE_CHECKING:
    from together_provider.hooks.together import TogetherHook

DEFAULT_ENDPOINT = "/v1/chat/completions"


@contextlib.contextmanager
def fail_fast() -> Iterator[None]:
    """Turn errors that no retry can fix (bad input, wrong key, unknown id) into a failure without
    retries; transient errors pass through so the task's own retries still apply."""
    from together_provider.client.errors import APIStatusError, InputFileError
    from together_provider.client.retry import RetryPolicy

    try:
        yield
    except (InputFileError, ValueError, FileNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc
    except APIStatusError as exc:
        if RetryPolicy().is_retryable(exc):
            raise
        raise AirflowFailException(str(exc)) from exc


class _TogetherOperator(BaseOperator):
    def __init__(self, *, together_conn_id: str = "together_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.together_conn_id = together_conn_id

    @cached_property
    def hook(self) -> TogetherHook:
        from together_provider.hooks.together import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)


def _clean_id(value: Any) -> str | None:
    """A templated id that rendered to nothing (``None`` becomes the text "None" in Jinja) is absent."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", "None", "null") else text


class GetBatchOperator(_TogetherOperator):
    """Fetch a batch. Returns it as a JSON-safe dict and pushes ``status``, ``output_file_id`` and
    ``error_file_id`` to XCom.

    :param batch_id: the batch to fetch (templated).
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    template_fields: Sequence[str] = ("batch_id", "together_conn_id")
    operator_extra_links = (TogetherBatchLink(),)

    def __init__(self, *, batch_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id

    def execute(self, context: Context) -> dict[str, Any]:
        with fail_fast():
            batch = self.hook.get_batch(self.batch_id)
        push_batch_url(context, self.hook, batch.id)
        data = batch.to_xcom()
        for key in ("status", "output_file_id", "error_file_id"):
            context["ti"].xcom_push(key=key, value=data[key])
        self.log.info("Together batch %s is %s (progress %s)", batch.id, data["status"], batch.progress)
        return data


class CancelBatchOperator(_TogetherOperator):
    """Cancel a batch that is still validating or running. A batch that already finished is left as it
    is (and logged), so a cancel task is safe to re-run. Returns the batch as a JSON-safe dict.

    :param batch_id: the batch to cancel (templated).
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    template_fields: Sequence[str] = ("batch_id", "together_conn_id")
    operator_extra_links = (TogetherBatchLink(),)

    def __init__(self, *, batch_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id

    def execute(self, context: Context) -> dict[str, Any]:
        from together_provider.client.errors import BadRequestError

        with fail_fast():
            try:
                batch = self.hook.cancel_batch(self.batch_id)
            except BadRequestError:
                batch = self.hook.get_batch(self.batch_id)
                if not batch.status.is_terminal:
                    raise
                self.log.info(
                    "Together batch %s already ended %s; nothing to cancel", batch.id, batch.raw_status
                )
        push_batch_url(context, self.hook, batch.id)
        self.log.info("Together batch %s is now %s", batch.id, batch.raw_status)
        return batch.to_xcom()


class DownloadBatchFileOperator(_TogetherOperator):
    """Stream a Together file (a batch's output or error file) to a local path and return the path.

    The file is written beside ``path`` under a temporary name, checked against the announced length
    and renamed into place, so ``path`` never holds a partial download.

    :param file_id: the file to fetch (templated), e.g.
        ``"{{ ti.xcom_pull('wait_for_batch', key='output_file_id') }}"``.
    :param path: where to write it (templated). Parent folders are created.
    :param allow_missing: when ``file_id`` is empty (a batch with no error file, say), return None
        instead of failing.
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    template_fields: Sequence[str] = ("file_id", "path", "together_conn_id")

    def __init__(self, *, file_id: str | None, path: str, allow_missing: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file_id = file_id
        self.path = path
        self.allow_missing = allow_missing

    def execute(self, context: Context) -> str | None:
        file_id = _clean_id(self.file_id)
        if file_id is None:
            if self.allow_missing:
                self.log.info("No file id given (the batch has no such file); nothing to download")
                return None
            raise AirflowFailException(
                "file_id is empty: pass a Together file id, e.g. the sensor's XCom "
                "'output_file_id', or set allow_missing=True for a file that may not exist"
            )
        if not self.path or not str(self.path).strip():
            raise AirflowFailException("path is empty: give the local file path to write the download to")
        with fail_fast():
            return self.hook.download_file(file_id, self.path)


class SubmitBatchOperator(_TogetherOperator):
    """Submit a batch: validate and upload a JSONL input file (or reuse an uploaded one), create the
    batch, and return its id. ``batch_id`` is pushed to XCom before any wait.

    With ``wait_for_completion=True`` the task then waits like :class:`BatchCompletionSensor`, with
    the same outcomes and XComs (deferred to the triggerer unless ``deferrable=False``).

    :param input_file_path: local JSONL file to validate and upload (templated). Give this or
        ``input_file_id``.
    :param input_file_id: an already uploaded Together file to use instead (templated).
    :param endpoint: the API the requests target; ``/v1/chat/completions`` by default.
    :param completion_window: passed to Together, which currently ignores it (the window is 24 h).
    :param priority: optional batch priority.
    :param model_id: optional model id recorded on the batch (each line names its own model).
    :param wait_for_completion: wait until the batch ends, and fail as the sensor does.
    :param deferrable: wait in the triggerer rather than on the worker.
    :param poll_interval: seconds between status checks while waiting.
    :param timeout: seconds to wait in all (default: the sensor default, at least 72 h).
    :param fail_on_request_errors: fail when a completed batch has an error file.
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
        deferrable: bool = True,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        fail_on_request_errors: bool = False,
        max_consecutive_failures: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (input_file_path is None) == (input_file_id is None):
            raise ValueError("give exactly one of input_file_path (a local JSONL file) or input_file_id")
        if poll_interval is None or poll_interval <= 0:
            raise ValueError(f"poll_interval must be greater than 0 seconds, got {poll_interval!r}")
        self.input_file_path = input_file_path
        self.input_file_id = input_file_id
        self.endpoint = endpoint
        self.completion_window = completion_window
        self.priority = priority
        self.model_id = model_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout if timeout is not None else default_timeout()
        self.fail_on_request_errors = fail_on_request_errors
        self.max_consecutive_failures = max_consecutive_failures

    def _input_file_id(self) -> str:
        from together_provider.client.jsonl import validate_input_file

        file_id = _clean_id(self.input_file_id)
        if file_id is not None:
            return file_id
        if not self.input_file_path or not str(self.input_file_path).strip():
            raise ValueError("input_file_path is empty: give the path of the JSONL file to submit")
        summary = validate_input_file(self.input_file_path, endpoint=self.endpoint)
        self.log.info(
            "Validated %s: %d requests, %d bytes, models %s",
            summary.path,
            summary.lines,
            summary.bytes,
            sorted(summary.models),
        )
        return self.hook.upload_file(summary.path, checksum=summary.sha256).id

    def execute(self, context: Context) -> str:
        with fail_fast():
            input_file_id = self._input_file_id()
            batch = self.hook.create_batch(
                input_file_id,
                endpoint=self.endpoint,
                completion_window=self.completion_window,
                priority=self.priority,
                model_id=self.model_id,
            )
        self.log.info(
            "Created Together batch %s (%s) from file %s", batch.id, batch.raw_status, input_file_id
        )
        context["ti"].xcom_push(key="batch_id", value=batch.id)
        push_batch_url(context, self.hook, batch.id)
        if self.wait_for_completion:
            self._wait(context, batch.id)
        return batch.id

    def _wait(self, context: Context, batch_id: str) -> None:
        from together_provider.triggers.batch import BatchStatusTrigger, batch_event

        deadline = time.time() + self.timeout
        if self.deferrable:
            self.defer(
                trigger=BatchStatusTrigger(
                    batch_id=batch_id,
                    together_conn_id=self.together_conn_id,
                    poll_interval=self.poll_interval,
                    deadline=deadline,
                    max_consecutive_failures=self.max_consecutive_failures,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        while True:
            with fail_fast():
                batch = self.hook.get_batch(batch_id)
            self.log.info("Together batch %s is %s (progress %s)", batch.id, batch.raw_status, batch.progress)
            if batch.status.is_terminal:
                event = batch_event(batch)
                break
            if time.time() + self.poll_interval > deadline:
                event = {"status": EVENT_TIMEOUT, "batch_id": batch_id, "error": "timed out waiting"}
                break
            time.sleep(self.poll_interval)
        finish_wait(context, event, fail_on_request_errors=self.fail_on_request_errors, log=self.log)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> str:
        finish_wait(context, event, fail_on_request_errors=self.fail_on_request_errors, log=self.log)
        return str(event["batch_id"])
