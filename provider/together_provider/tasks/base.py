"""What every task of this provider shares: the connection, the error rules, the hook, lineage, and the
cancel a killed task makes on its way out."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from together_provider._compat import BaseOperator
from together_provider.client.errors import TogetherError
from together_provider.tasks.lineage import TaskLineage, api_host, operator_lineage
from together_provider.tasks.outcome import task_errors

if TYPE_CHECKING:
    from together_provider.hooks.together import TogetherHook
    from together_provider.tasks.lineage import TaskLineage


def cancel_quietly(hook: Any, batch_id: str, log: Any) -> None:
    """Cancel on the way out of a killed task: log, never raise over the kill itself."""

    try:
        log.info("The task was killed: cancelling the Together batch %s it waits on", batch_id)
        hook.cancel_batch(batch_id)
    except (TogetherError, ValueError) as exc:
        log.warning("Could not cancel Together batch %s after the task was killed: %s", batch_id, exc)


class TogetherTask(BaseOperator):
    """The base of the provider's operators: a Together connection, the error rules of
    :func:`~together_provider.tasks.outcome.task_errors`, and what the task read and wrote for lineage."""

    def __init__(self, *, together_conn_id: str = "together_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.together_conn_id = together_conn_id
        self._lineage: TaskLineage | None = None

    def task_errors(self) -> Any:
        return task_errors(conn_id=self.together_conn_id)

    @cached_property
    def hook(self) -> TogetherHook:
        from together_provider.hooks.together import TogetherHook

        return TogetherHook(together_conn_id=self.together_conn_id)

    def record_lineage(self, **fields: Any) -> None:
        """Note what this task read and wrote (see :class:`together_provider.tasks.lineage.TaskLineage`)."""

        try:
            host = api_host(self.hook.settings.base_url)
        except Exception:  # lineage never fails a task; the default host names the dataset then
            self._lineage = TaskLineage(**fields)
            return
        self._lineage = TaskLineage(api_host=host, **fields)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's inputs, outputs and run facet for this task; only the OpenLineage provider calls
        this, so only then is OpenLineage imported."""

        return operator_lineage(self._lineage)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_complete(task_instance)
