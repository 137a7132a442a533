"""BatchResultsOperator: a finished batch's results landed as data, one row per request (JSONL or Parquet)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from together_provider._compat import AirflowException, AirflowFailException, Context, xcom_push
from together_provider.client import results, table
from together_provider.client.cost import Pricing, checked_batch_discount, checked_prices, estimate
from together_provider.client.ids import batch_ids_of
from together_provider.client.polling import checked_poll_interval
from together_provider.client.repair import checked_rounds, merged_rows, needs_repair, round_summary, tagged
from together_provider.client.results import checked_min_success_ratio
from together_provider.client.wait import XCOM_LIST_KEYS
from together_provider.links import TogetherBatchLink
from together_provider.tasks import repair, rows, storage
from together_provider.tasks.assets import EVENT_KEYS, annotate_outlets
from together_provider.tasks.base import TogetherTask, cancel_quietly
from together_provider.tasks.waiting import BatchWait, default_deferrable, default_timeout, push_batch_url

XCOM_MANIFEST = "manifest"
# What a repair knows when it defers (the round, its batches, the rounds so far), read back on resume.
XCOM_REPAIR = "repair"


class BatchResultsOperator(TogetherTask):
    """Land a finished batch's results at ``result_path`` as one row per request, JSONL or a Parquet
    table, and return a small manifest.

    Each row is ``{"custom_id", "status", "response", "error", "usage", "model"}``, ``status`` being
    ``succeeded``, ``errored`` or ``missing``; ``result_format="parquet"`` lands them as a table of typed
    columns (:doc:`/results_table`). The manifest (the return value, also pushed under XCom key
    ``manifest``) holds the counts, the token usage per model, an estimated cost and ``result_uri``. The
    rows are streamed and appear at ``result_path`` only when whole. ``batch_id`` may be a list of
    batches, whose rows land as one set with one manifest; ``retry_failed_requests`` sends failed
    requests again (:doc:`/repair`).
    How-to guide: :doc:`/operators/batch_results`.

    :param batch_id: the batch whose results to land (templated), or a list of them.
    :param result_path: where to write the rows (templated): a local path, a URL Airflow's
        ``ObjectStoragePath`` understands (``file:///...``, ``s3://conn_id@bucket/key.jsonl``) or an
        ``ObjectStoragePath``.
    :param fail_on_request_errors: after landing, fail (without retries) when any request errored or is
        missing.
    :param min_success_ratio: after landing, fail (without retries) when succeeded / total is below this
        (0 < ratio <= 1); None: no minimum.
    :param retry_failed_requests: after landing, send the requests that are missing or errored with an
        error a retry can fix (:doc:`/repair` says which) again as a new batch, wait, merge, up to
        this many rounds (0, the default: no repair). Each row then names its ``round`` and ``batch_id``
        and the manifest gains ``rounds`` (each with its ``cost``); the checks above apply to the merged
        rows.
    :param result_format: ``"jsonl"`` (the default) or ``"parquet"`` (needs the ``[parquet]`` extra,
        checked when the DAG is built and again when the task starts).
    :param prices: prices per million tokens per model, ``{model: {"input": 0.88, "output": 0.88}}``;
        each model's price here wins over the connection's extra ``prices``. No price is built in.
    :param batch_discount: the share the Batch API takes off those prices, 0 to 1 (default: the
        connection's extra ``batch_discount``, else 0.5, Together's "up to 50%" off serverless rates).
    :param deferrable: wait for a repair round in the triggerer, holding no worker slot (default True,
        or ``[operators] default_deferrable`` where the deployment sets it).
    :param poll_interval: seconds between status checks of a repair round.
    :param timeout: seconds a repair round may take before the task fails (default as the sensor's).
    :param cancel_on_kill: cancel the round in flight when the task is killed.
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
        retry_failed_requests: int = 0,
        result_format: str = table.JSONL,
        prices: Mapping[str, Any] | None = None,
        batch_discount: float | None = None,
        deferrable: bool | None = None,
        poll_interval: float = 60.0,
        timeout: float | None = None,
        cancel_on_kill: bool = True,
        max_consecutive_failures: int = 5,
        adaptive_polling: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch_id = batch_id
        self.result_path = result_path
        self.fail_on_request_errors = fail_on_request_errors
        self.min_success_ratio = checked_min_success_ratio(min_success_ratio)
        self.retry_failed_requests = checked_rounds(retry_failed_requests)
        self.result_format = table.checked_format(result_format)
        # At DAG build, where possible: a DAG asking for Parquet where pyarrow is missing fails to parse,
        # naming the extra, instead of failing its first run.
        rows.check_format_support(self.result_format)
        self.prices = checked_prices(prices, "prices") if prices is not None else None
        self.batch_discount = checked_batch_discount(batch_discount, "batch_discount")
        self.deferrable = default_deferrable(deferrable)
        self.poll_interval = checked_poll_interval(poll_interval)
        self.timeout = timeout if timeout is not None else default_timeout()
        self.cancel_on_kill = cancel_on_kill
        self.max_consecutive_failures = max_consecutive_failures
        self.adaptive_polling = adaptive_polling
        self._round_ids: list[str] = []

    @property
    def wait(self) -> BatchWait:
        return BatchWait.of(self)

    def execute(self, context: Context) -> dict[str, Any]:
        repairing = self.retry_failed_requests > 0
        with self.task_errors():
            rows.check_format_support(self.result_format)
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
            # Before anything is written: a bad price in the connection fails the task with nothing landed.
            pricing = self._pricing()
            resend: set[str] = set()
            tally = results.Tally()
            # A table has a round and a batch column whether or not it is repaired.
            tag = repairing or self.result_format == table.PARQUET
            landing = self._rows(batches, round_number=0 if tag else None, many=many)
            where = self._write(landing, tally, resend if repairing else None)
            manifest = self._manifest(batches, many=many, where=where, tally=tally, pricing=pricing)
        if not repairing:
            return self._done(context, manifest, batches, many=many)
        state = {
            "round": 0,
            "batch_ids": [b.id for b in batches],
            "many": many,
            "rounds": [_round_line(0, [b.id for b in batches], tally, pricing)],
        }
        manifest["rounds"] = state["rounds"]
        xcom_push(context["ti"], XCOM_MANIFEST, manifest)
        return self._repair(context, state, batches, resend)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        """A repair round's wait ended: merge it, and go on with the next round or finish."""
        ti = context["ti"]
        state = ti.xcom_pull(task_ids=ti.task_id, key=XCOM_REPAIR, map_indexes=getattr(ti, "map_index", None))
        if not isinstance(state, dict) or "round" not in state:
            raise AirflowException(
                f"BatchResultsOperator resumed without its repair state (XCom key {XCOM_REPAIR!r}); clear "
                "the task to land and repair again"
            )
        with self.task_errors():
            resend, batches = self._land_round(context, state, event)
        return self._repair(context, state, batches, resend)

    def on_kill(self) -> None:
        """A killed task cancels the repair round it waited on (a deferred wait cancels from the trigger)."""
        if self.cancel_on_kill:
            for batch_id in self._round_ids:
                cancel_quietly(self.hook, batch_id, self.log)

    # ---- landing --------------------------------------------------------------------------------

    def _rows(self, batches: list[Any], *, round_number: int | None, many: bool) -> Iterator[dict[str, Any]]:
        """Every batch's rows as one set, part after part (tagged with the round when repairing). Every
        part is asked before the writer opens: one still running leaves nothing at result_path."""
        parts = []
        for batch in batches:
            records = self.hook.iter_results(batch)
            parts.append(
                (batch.id, records if round_number is None else tagged(records, round_number, batch.id))
            )
        return results.merge_parts(parts) if many else iter(parts[0][1])

    def _write(self, landing: Iterable[dict[str, Any]], tally: results.Tally, resend: set[str] | None) -> str:
        """Stream ``landing`` to ``result_path`` in the result format (whole or not at all); tally the
        rows, and note in ``resend`` the ones a repair round would send again."""
        with (
            storage.atomic_writer(self.result_path, field="result_path") as (sink, where),
            rows.row_writer(self.result_format, sink) as write,
        ):
            for row in landing:
                tally.add(row)
                if resend is not None and needs_repair(row):
                    resend.add(row["custom_id"])
                write(row)
        return where

    def _pricing(self) -> Pricing:
        """The connection's prices and batch discount, with this task's own winning."""
        return self.hook.pricing.overridden(prices=self.prices, batch_discount=self.batch_discount)

    def _manifest(
        self, batches: list[Any], *, many: bool, where: str, tally: results.Tally, pricing: Pricing
    ) -> dict[str, Any]:
        if many:
            manifest = results.build_list_manifest(batches=batches, result_uri=where, tally=tally)
        else:
            batch = batches[0]
            manifest = results.build_manifest(
                batch_id=batch.id,
                status=batch.raw_status,
                result_uri=where,
                tally=tally,
                output_file_id=batch.output_file_id,
                error_file_id=batch.error_file_id,
            )
        manifest["format"] = self.result_format
        manifest["rows"] = tally.counts["total"]
        manifest.update(estimate(tally.usage_by_model, pricing))
        return manifest

    # ---- repair ---------------------------------------------------------------------------------

    def _repair(
        self, context: Context, state: dict[str, Any], previous: list[Any], resend: set[str]
    ) -> dict[str, Any]:
        """Send what needs it again, round after round, until nothing is left or the rounds run out."""
        while resend and state["round"] < self.retry_failed_requests:
            number = state["round"] + 1
            with self.task_errors(), tempfile.TemporaryDirectory(prefix="together-repair-") as folder:
                path, count = repair.round_input(self.hook, previous, resend, folder, self.log)
                if not count:
                    break
                self.log.info(
                    "Repair round %d of %d: sending %d requests again (missing, or errored with an error a "
                    "retry can fix)",
                    number,
                    self.retry_failed_requests,
                    count,
                )
                endpoint, model_id = previous[0].endpoint, previous[0].model_id
                made = repair.submit_round(
                    self.hook,
                    context,
                    path,
                    round_number=number,
                    endpoint=endpoint,
                    model_id=model_id,
                    log=self.log,
                )
            state["round"] = number
            self._round_ids = [batch.id for batch in made]
            state["pending"] = list(self._round_ids)
            if self.deferrable:
                # Kept in XCom, not in the deferral's kwargs: dag.test() resumes with the event alone.
                xcom_push(context["ti"], XCOM_REPAIR, state)
                self.wait.defer(self, self._round_ids)
            with self.task_errors():
                event = self.wait.run_on_worker(self.hook, self._round_ids, self.log)
                resend, previous = self._land_round(context, state, event)
        return self._finish_repair(context, state)

    def _land_round(self, context: Context, state: dict[str, Any], event: Any) -> tuple[set[str], list[Any]]:
        """Merge the round's rows into those landed; fail naming the round when its batches did not all
        complete (after merging what they answered). Returns the requests still to send, and the round's
        batches (their input files hold them)."""
        number = state["round"]
        where = str(self.result_path)
        repair.check_round_wait(event, number, self.retry_failed_requests, where)
        _require_landed_rows(self.result_path)
        batches = [self.hook.get_batch(batch_id) for batch_id in state["pending"]]
        pricing = self._pricing()
        self._round_ids = []
        resend: set[str] = set()
        tally, round_tally = results.Tally(), results.Tally()
        new_rows = self._rows(batches, round_number=number, many=True)
        # The landed rows are read back from result_path, in their format, whichever worker resumed: a
        # table holds each row whole (client/table.py), so nothing beside it needs keeping.
        with rows.landed_rows(self.result_path, self.result_format, field="result_path") as old:
            landed = self._write(merged_rows(new_rows, old, round_tally.add), tally, resend)
        state["rounds"].append(_round_line(number, [b.id for b in batches], round_tally, pricing))
        first = [self.hook.get_batch(batch_id) for batch_id in state["batch_ids"]]
        manifest = self._manifest(first, many=state["many"], where=landed, tally=tally, pricing=pricing)
        manifest["rounds"] = state["rounds"]
        xcom_push(context["ti"], XCOM_MANIFEST, manifest)
        status = results.worst_status(b.raw_status for b in batches)
        if status != "COMPLETED":
            culprit = next(b for b in batches if b.raw_status == status)
            raise AirflowFailException(
                f"repair round {number} of {self.retry_failed_requests}: Together batch {culprit.id} "
                f"ended {status}: {culprit.error or 'Together gave no reason'}; the repair stops here, "
                f"with the rows of every round so far (what this one answered too) landed at {landed}"
            )
        return resend, batches

    def _finish_repair(self, context: Context, state: dict[str, Any]) -> dict[str, Any]:
        """The manifest across every round, and the checks on the merged rows."""
        with self.task_errors():
            first = [self.hook.get_batch(batch_id) for batch_id in state["batch_ids"]]
            tally = results.Tally()
            with rows.landed_rows(
                self.result_path, self.result_format, field="result_path", columns=table.TALLY_COLUMNS
            ) as landed:
                for row in landed:
                    tally.add(row)
            manifest = self._manifest(
                first,
                many=state["many"],
                where=_where(self.result_path),
                tally=tally,
                pricing=self._pricing(),
            )
        manifest["rounds"] = state["rounds"]
        rounds = len(state["rounds"]) - 1
        if rounds:
            self.log.info("Repaired in %d round(s): %s", rounds, state["rounds"][1:])
        else:
            self.log.info("Nothing to repair: no request is missing or errored with an error a retry can fix")
        return self._done(context, manifest, first, many=state["many"])

    # ---- the end --------------------------------------------------------------------------------

    def _done(
        self, context: Context, manifest: dict[str, Any], batches: list[Any], *, many: bool
    ) -> dict[str, Any]:
        """Lineage, the manifest pushed and checked, and the assets' events."""
        round_ids = [bid for line in manifest.get("rounds", [])[1:] for bid in line["batch_ids"]]
        round_batches = [self.hook.get_batch(batch_id) for batch_id in round_ids]
        everything = [*batches, *round_batches]
        self.record_lineage(
            input_file_ids=[
                fid for b in everything for fid in (b.input_file_id, b.output_file_id, b.error_file_id) if fid
            ],
            output_locations=[manifest["result_uri"]],
            batch_id=None if many else batches[0].id,
            status=manifest["status"],
            endpoint=batches[0].endpoint,
            models=sorted({b.model_id for b in everything if b.model_id}),
            counts=manifest["counts"],
            output_schema=table.schema_fields() if self.result_format == table.PARQUET else None,
        )
        self._report(context, manifest, f"{len(batches)} batches" if many else f"batch {batches[0].id}")
        extra = {
            **{key: manifest[key] for key in (XCOM_LIST_KEYS if many else EVENT_KEYS)},
            "status": manifest["status"],
            "result_uri": manifest["result_uri"],
            "counts": manifest["counts"],
            "format": manifest["format"],
            "cost": manifest["cost"],
            "unpriced_models": manifest["unpriced_models"],
        }
        if "rounds" in manifest:
            extra["rounds"] = manifest["rounds"]
        annotate_outlets(context, extra)
        return manifest

    def _report(self, context: Context, manifest: dict[str, Any], which: str) -> None:
        """Push the manifest, log it, and fail when the landed rows fall short (after landing)."""

        xcom_push(context["ti"], XCOM_MANIFEST, manifest)
        counts, usage = manifest["counts"], manifest["usage"]
        self.log.info(
            "Landed %d rows of Together %s (%s) at %s as %s: %d succeeded, %d errored, %d missing; "
            "%d tokens (%d prompt, %d completion)",
            counts["total"],
            which,
            manifest["status"],
            manifest["result_uri"],
            manifest["format"],
            counts["succeeded"],
            counts["errored"],
            counts["missing"],
            usage["total_tokens"],
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
        if manifest["unpriced_models"]:
            self.log.info(
                "No estimated cost: no price for %s (give prices per million tokens in the connection's "
                "extra 'prices' or the operator's prices=)",
                ", ".join(manifest["unpriced_models"]),
            )
        else:
            self.log.info(
                "Estimated cost: %.6f (batch discount %g)", manifest["cost"], manifest["batch_discount"]
            )
        problem = results.request_failure(
            manifest,
            fail_on_request_errors=self.fail_on_request_errors,
            min_success_ratio=self.min_success_ratio,
        )
        if problem is not None:
            raise AirflowFailException(problem)


def _round_line(number: int, batch_ids: list[str], tally: results.Tally, pricing: Pricing) -> dict[str, Any]:
    """A round's line of the manifest's ``rounds``, with what the round's answers cost."""
    return {
        **round_summary(number, batch_ids, tally.counts),
        "cost": estimate(tally.usage_by_model, pricing)["cost"],
    }


def _where(value: Any) -> str:
    target = storage.resolve(value, field="result_path")
    return target if isinstance(target, str) else str(target)


def _require_landed_rows(value: Any) -> None:
    """A resumed repair merges into the rows landed before it deferred: a local ``result_path`` must be
    on this worker too."""
    target = storage.resolve(value, field="result_path")
    if isinstance(target, str) and not os.path.exists(target):
        raise ValueError(
            f"result_path={target!r}: the rows landed before the repair round are not on this worker (the "
            "task resumed on another host); with retry_failed_requests and deferrable=True give an object "
            "storage URL or a path every worker shares, or set deferrable=False"
        )
