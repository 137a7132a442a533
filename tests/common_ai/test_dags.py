"""dag.test() of common.ai's @task.llm_batch and LLMBatchOperator on Together (the emulator): what the
manifest counts and what lands, per outcome, and a lost submit answer re-attached on the retry."""

from __future__ import annotations

import pytest

from .conftest import COMMON_AI, SKIP_REASON, return_value, rows_at, state

pytest.importorskip(COMMON_AI, reason=SKIP_REASON)

from airflow.providers.common.ai.batch import state as batch_state

from together_provider._compat import ObjectStoragePath
from together_provider.hooks.together import TogetherHook

from ..conftest import load_dag

DAGS = "together_llm_batch.py"
MODEL = "together:meta-llama/Llama-3.3-70B-Instruct-Turbo"
REVIEWS = ["The soup was cold.", "Lovely staff, great view.", "It was fine."]
SENTIMENT = {"label": "positive", "score": 0, "summary": "string"}


def counts(**given):
    return {
        "succeeded": 0,
        "errored": 0,
        "invalid_output": 0,
        "expired": 0,
        "cancelled": 0,
        "missing": 0,
        **given,
    }


@pytest.fixture
def run(airflow_db, together_conn, fast_clock, results_dir):
    def run(dag_id):
        dag_run = load_dag(airflow_db, DAGS, dag_id).test()
        return dag_run, {ti.task_id: ti for ti in dag_run.get_task_instances()}

    return run


def key16(dag_run, task_id):
    key = batch_state.compute_identity_key(
        dag_id=dag_run.dag_id, task_id=task_id, run_id=dag_run.run_id, map_index=-1
    )
    return key, batch_state.key16(key)


def test_decorator_plain_text_deferred_and_structured(run, results_dir, emu):
    dag_run, tis = run("together_llm_batch_decorator")
    assert {task: state(ti) for task, ti in tis.items()} == {"text": "success", "structured": "success"}

    text = return_value(dag_run, "text")
    assert (
        text["adapter"] == "together"
        and text["model_id"] == MODEL
        and text["llm_conn_id"] == "together_default"
    )
    assert text["counts"] == counts(succeeded=3) and text["request_count"] == 3
    assert text["terminal_reason"] == "succeeded" and text["structured"] is False
    assert text["result_uri"].startswith((results_dir / "together_llm_batch_decorator").as_uri())
    rows = rows_at(text["result_uri"])
    assert [row["output"] for row in rows] == [
        f"Emulated answer to: {('Summarize: ' + r)[:40]}" for r in REVIEWS
    ]
    assert {row["status"] for row in rows} == {"success"}
    assert all(row["usage"]["input_tokens"] > 0 and row["finish_reason"] == "stop" for row in rows)
    assert [row["custom_id"] for row in rows] == [f"{text['custom_id_prefix']}-{i}" for i in range(3)]

    structured = return_value(dag_run, "structured")
    assert structured["structured"] is True and structured["output_type_ref"].endswith("Sentiment")
    assert structured["counts"] == counts(succeeded=3)
    assert [row["output"] for row in rows_at(structured["result_uri"])] == [SENTIMENT] * 3
    # one create per task, nothing paid twice
    assert len(emu.requests_log(method="POST", path="/v1/batches")) == 2


def test_operator_text_structured_and_request_errors_both_ways(run, task_logs):
    dag_run, tis = run("together_llm_batch_operator")
    assert {task: state(ti) for task, ti in tis.items()} == {
        "text": "success",
        "structured": "success",
        "tolerant": "success",
        "strict": "failed",
    }
    assert return_value(dag_run, "text")["counts"] == counts(succeeded=3)
    assert [r["output"] for r in rows_at(return_value(dag_run, "structured")["result_uri"])] == [
        SENTIMENT
    ] * 3

    tolerant = return_value(dag_run, "tolerant")
    assert tolerant["counts"] == counts(succeeded=2, errored=1) and tolerant["terminal_reason"] == "partial"
    rows = rows_at(tolerant["result_uri"])
    assert [row["status"] for row in rows] == ["success", "error", "success"]
    assert rows[1]["error"]["message"] == "emulator: request failed on purpose"
    assert rows[1]["error"]["provider_code"] == "400" and rows[1]["output"] is None

    # fail_on_partial_error=True: the same rows land, then the task fails naming the errored count.
    assert return_value(dag_run, "strict") is None
    _, prefix = key16(dag_run, "strict")
    landed = ObjectStoragePath(tolerant["result_uri"]).parent / f"{prefix}.jsonl"
    assert [row["status"] for row in rows_at(str(landed))] == ["success", "error", "success"]
    assert "errored=1); fail_on_partial_error=True" in task_logs()


def test_failed_and_expired_batches(run, task_logs):
    dag_run, tis = run("together_llm_batch_batch_outcomes")
    assert {task: state(ti) for task, ti in tis.items()} == {"failed": "failed", "expired": "success"}
    out = task_logs()
    assert "ended FAILED: emulator: batch failed on purpose" in out
    assert "the recorded state was cleared so a retry submits a new batch" in out
    key, _ = key16(dag_run, "failed")
    root = ObjectStoragePath(return_value(dag_run, "expired")["result_uri"]).parent
    assert not (root / "_airflow_batch_state" / f"{key}.json").exists()

    expired = return_value(dag_run, "expired")
    # The emulator answers half the workable requests of an expiring batch; the rest never ran.
    assert expired["counts"] == counts(succeeded=1, expired=2) and expired["terminal_reason"] == "expired"
    rows = rows_at(expired["result_uri"])
    assert [row["status"] for row in rows] == ["success", "expired", "expired"]
    assert "ended EXPIRED before answering" in rows[1]["error"]["message"]


def test_a_lost_create_answer_is_re_attached_on_the_retry_not_paid_twice(run, emu, task_logs):
    """Try 1 records common.ai's intent, uploads and creates the batch; Together creates it but the
    answer never arrives (the emulator drops the connection after handling the create), so the try
    fails. Try 2 finds the intent with no batch id, asks the adapter, and re-attaches to that batch."""
    emu.set_faults({"method": "POST", "path": "^/v1/batches$", "kind": "drop", "phase": "after", "times": 1})
    dag_run, tis = run("together_llm_batch_reattach")
    assert state(tis["classify"]) == "success" and tis["classify"].try_number == 2
    assert len(emu.requests_log(method="POST", path="/v1/batches")) == 1
    _, prefix = key16(dag_run, "classify")
    hook = TogetherHook()
    ours = {f.id for f in hook.list_files() if (f.filename or "").startswith(f"llm-batch.af-{prefix}-")}
    (batch,) = [b for b in hook.list_batches() if b.input_file_id in ours]
    manifest = return_value(dag_run, "classify")
    assert manifest["batch_id"] == batch.id and manifest["counts"] == counts(succeeded=3)
    assert [row["output"] for row in rows_at(manifest["result_uri"])] == [SENTIMENT] * 3
    assert "Recovered orphaned batch" in task_logs()


def test_the_example_dag(airflow_db, together_conn, fast_clock, monkeypatch, tmp_path, task_logs):
    monkeypatch.setenv("TOGETHER_EXAMPLE_RESULTS_URL", tmp_path.as_uri())
    dag_run = load_dag(airflow_db, "example_together_llm_batch.py", "example_together_llm_batch").test()
    tis = {ti.task_id: state(ti) for ti in dag_run.get_task_instances()}
    assert tis == {"classify_reviews": "success", "tally": "success"}
    manifest = return_value(dag_run, "classify_reviews")
    assert manifest["counts"] == counts(succeeded=3) and manifest["result_uri"].startswith(tmp_path.as_uri())
    assert return_value(dag_run, "tally") == {"labels": {"positive": 3}, "counts": manifest["counts"]}
    rows = rows_at(manifest["result_uri"])
    assert [row["output"] for row in rows] == [{"label": "positive", "summary": "string"}] * 3
    assert f"Together batch {manifest['batch_id']}: {{'positive': 3}}" in task_logs()
