"""The sensor's trigger with ``end_from_trigger=True``: a batch that completed ends the task in the
triggerer (Airflow 2.10+'s ``TaskSuccessEvent``, with the XComs the sensor's ``execute_complete`` would
push and return), so no worker runs for it. Every other outcome (a failed, expired or cancelled batch,
a timeout, an error, a completed batch with request errors under ``fail_on_request_errors=True``) is
the ordinary event and resumes the task on a worker, where ``tasks.outcome.finish_wait`` words the failure
and Airflow applies the task's retry rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from together_provider import _compat
from together_provider.client.wait import ends_in_success, request_errors_line, wait_result
from together_provider.triggers.batch import BatchStatusTrigger


def success_event(payload: Any, *, fail_on_request_errors: bool, log: Any) -> Any | None:
    """The ``TaskSuccessEvent`` that ends the task for this event, or None when a worker must resume."""
    if not isinstance(payload, dict) or not ends_in_success(
        payload, fail_on_request_errors=fail_on_request_errors
    ):
        return None
    result = wait_result(payload)
    if result["error_file_id"]:
        log.warning("%s", request_errors_line(result))
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
