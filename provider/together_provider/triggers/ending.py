"""The sensor's trigger with ``end_from_trigger=True``: a batch that completed ends the task in the
triggerer (Airflow 2.10+'s ``TaskSuccessEvent``, with the XComs the sensor's ``execute_complete`` would
push and return), so no worker runs for it. Every other outcome (a failed, expired or cancelled batch,
a timeout, an error, a completed batch with request errors under ``fail_on_request_errors=True``) is
the ordinary event and resumes the task on a worker, where ``outcome.finish_wait`` words the failure
and Airflow applies the task's retry rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from together_provider import _compat
from together_provider.outcome import XCOM_KEYS
from together_provider.triggers.batch import BatchStatusTrigger


def success_event(payload: Any, *, fail_on_request_errors: bool, log: Any) -> Any | None:
    """The ``TaskSuccessEvent`` that ends the task for this event, or None when a worker must resume."""
    from together_provider.client.models import BatchStatus

    if not isinstance(payload, dict) or "batch_ids" in payload:
        return None
    if not BatchStatus.parse(payload.get("status")).is_success:
        return None
    result = {key: payload.get(key) for key in XCOM_KEYS}
    if result["error_file_id"]:
        if fail_on_request_errors:
            return None
        log.warning(
            "Together batch %s completed, but some requests failed. Their errors are in file %s "
            "(XCom key 'error_file_id'; fetch it with DownloadBatchFileOperator).",
            result["batch_id"],
            result["error_file_id"],
        )
    return _compat.TaskSuccessEvent(xcoms={**result, "return_value": result})


class BatchStatusEndingTrigger(BatchStatusTrigger):
    """:class:`BatchStatusTrigger` that ends a completed wait itself; see the module's docstring.

    :param fail_on_request_errors: the sensor's: a completed batch with an error file then resumes on
        a worker, which fails the task.
    """

    def __init__(self, *, fail_on_request_errors: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fail_on_request_errors = bool(fail_on_request_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        classpath, kwargs = super().serialize()
        return classpath, {**kwargs, "fail_on_request_errors": self.fail_on_request_errors}

    async def run(self) -> AsyncIterator[Any]:
        async for event in super().run():
            ending = success_event(
                event.payload, fail_on_request_errors=self.fail_on_request_errors, log=self.log
            )
            yield event if ending is None else ending
