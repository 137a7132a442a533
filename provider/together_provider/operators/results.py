"""BatchResultsOperator: a finished batch's results landed as data, one JSONL row per request."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from together_provider._compat import AirflowFailException, Context, xcom_push
from together_provider.client import results
from together_provider.client.ids import batch_ids_of
from together_provider.client.results import checked_min_success_ratio
from together_provider.client.wait import XCOM_LIST_KEYS
from together_provider.links import TogetherBatchLink
from together_provider.tasks import storage
from together_provider.tasks.assets import EVENT_KEYS, annotate_outlets
from together_provider.tasks.base import TogetherTask
from together_provider.tasks.waiting import push_batch_url

XCOM_MANIFEST = "manifest"


class BatchResultsOperator(TogetherTask):
    """Land a finished batch's results at ``result_path`` as one JSONL row per request, and return a
    small manifest.

    Each row is ``{"custom_id", "status", "response", "error", "usage", "model"}``, ``status`` being
    ``succeeded``, ``errored`` or ``missing``. The manifest (the return value, also pushed under XCom key
    ``manifest``) holds the counts, the summed token usage and ``result_uri``. The rows are streamed and
    appear at ``result_path`` only when whole. ``batch_id`` may be a list of batches, whose rows land as
    one set with one manifest. How-to guide: :doc:`/operators/batch_results`.

    :param batch_id: the batch whose results to land (templated), or a list of them.
    :param result_path: where to write the rows (templated): a local path, a URL Airflow's
        ``ObjectStoragePath`` understands (``file:///...``, ``s3://conn_id@bucket/key.jsonl``) or an
        ``ObjectStoragePath``.
    :param fail_on_request_errors: after landing, fail (without retries) when any request errored or is
        missing.
    :param min_success_ratio: after landing, fail (without retries) when succeeded / total is below this
        (0 < ratio <= 1); None: no minimum.
    :param together_conn_id: the Airflow connection with the Together API key.
    """

    template_fields: Sequence[str] = ("batch_id", "result_path", "together_conn_id")
    operator_extra_links = (TogetherBatchLink(),)

    def __init__(
        self,
        *,
        batch_id: str,
        result_path: Any,
        fail_on_request_errors: bool = False,
        min_success_ratio: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.result_path = result_path
        self.fail_on_request_errors = fail_on_request_errors
        self.min_success_ratio = checked_min_success_ratio(min_success_ratio)

    def execute(self, context: Context) -> dict[str, Any]:
        with self.task_errors():
            ids = batch_ids_of(self.batch_id, "batch_id")
            if self.result_path is None or not str(self.result_path).strip():
                raise ValueError(
                    "result_path is empty: give the local path or object storage URL to land the rows at"
                )
            many = isinstance(ids, list)
            batches = [
                self.hook.get_batch(batch_id) for batch_id in (ids if isinstance(ids, list) else [ids])
            ]
            if not many:
                push_batch_url(context, self.hook, batches[0].id)
            manifest = self._land(batches, many=many)
        self.record_lineage(
            input_file_ids=[
                fid for b in batches for fid in (b.input_file_id, b.output_file_id, b.error_file_id) if fid
            ],
            output_locations=[manifest["result_uri"]],
            batch_id=None if many else batches[0].id,
            status=manifest["status"],
            endpoint=batches[0].endpoint,
            models=sorted({b.model_id for b in batches if b.model_id}),
            counts=manifest["counts"],
        )
        self._report(context, manifest, f"{len(batches)} batches" if many else f"batch {batches[0].id}")

        annotate_outlets(
            context,
            {
                **{key: manifest[key] for key in (XCOM_LIST_KEYS if many else EVENT_KEYS)},
                "status": manifest["status"],
                "result_uri": manifest["result_uri"],
                "counts": manifest["counts"],
            },
        )
        return manifest

    def _report(self, context: Context, manifest: dict[str, Any], which: str) -> None:
        """Push the manifest, log it, and fail when the landed rows fall short (after landing)."""

        xcom_push(context["ti"], XCOM_MANIFEST, manifest)
        counts, usage = manifest["counts"], manifest["usage"]
        self.log.info(
            "Landed %d rows of Together %s (%s) at %s: %d succeeded, %d errored, %d missing; "
            "%d tokens (%d prompt, %d completion)",
            counts["total"],
            which,
            manifest["status"],
            manifest["result_uri"],
            counts["succeeded"],
            counts["errored"],
            counts["missing"],
            usage["total_tokens"],
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        problem = results.request_failure(
            manifest,
            fail_on_request_errors=self.fail_on_request_errors,
            min_success_ratio=self.min_success_ratio,
        )
        if problem is not None:
            raise AirflowFailException(problem)

    def _land(self, batches: list[Any], *, many: bool) -> dict[str, Any]:
        """Stream every batch's rows to ``result_path`` (one set, part after part) and build the manifest:
        a list's (``schema_version`` 2) when ``batch_id`` was a list, else one batch's."""

        # Every part is asked before the writer opens: one still running leaves nothing at result_path.
        parts = [(batch.id, self.hook.iter_results(batch)) for batch in batches]
        records = results.merge_parts(parts) if many else parts[0][1]
        tally = results.Tally()
        with storage.atomic_writer(self.result_path, field="result_path") as (sink, where):
            for rec in records:
                tally.add(rec)
                sink.write(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
        if many:
            return results.build_list_manifest(batches=batches, result_uri=where, tally=tally)
        batch = batches[0]
        return results.build_manifest(
            batch_id=batch.id,
            status=batch.raw_status,
            result_uri=where,
            tally=tally,
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
        )
