"""TogetherBatchAdapter against the emulator: common.ai's contract, Together's limits, the status map,
results, orphan lookup and clean-up."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime, timedelta

import pytest

from .conftest import COMMON_AI, SKIP_REASON

pytest.importorskip(COMMON_AI, reason=SKIP_REASON)

from airflow.providers.common.ai.batch import dispatch
from airflow.providers.common.ai.batch.base import BatchAdapter
from airflow.providers.common.ai.batch.output_schema import build_output_spec
from airflow.providers.common.ai.exceptions import (
    BatchProviderNotYetSupportedError,
    LLMBatchLimitExceededError,
    LLMBatchModelMismatchError,
)
from pydantic import BaseModel

from together_provider.client.errors import AuthenticationError, NotFoundError, ServerError
from together_provider.client.models import BatchStatus
from together_provider.common_ai import adapter as adapter_module
from together_provider.common_ai.adapter import TogetherBatchAdapter

from ..conftest import TEST_KEY

KEY = "0123456789abcdef"
FINGERPRINT = "f" * 64
TEXT = build_output_spec(str)


class Verdict(BaseModel):
    label: str
    score: int


@pytest.fixture
def adapter(emu):
    made = TogetherBatchAdapter(api_key=TEST_KEY, base_url=emu.url)
    yield made
    made.close()


def submit(adapter, prompts, *, key=KEY, fingerprint=FINGERPRINT, spec=TEXT, model="test/model"):
    requests = [p if isinstance(p, dict) else {"prompt": p} for p in prompts]
    adapter.validate_requests(requests, model=model, output_spec=spec, idempotency_key=key)
    return adapter.submit(
        requests, model=model, idempotency_key=key, input_fingerprint=fingerprint, output_spec=spec
    ).batch_id


# ---- the contract ------------------------------------------------------------------------------------


def test_every_abstract_method_is_implemented_with_the_contracts_signature():
    assert not TogetherBatchAdapter.__abstractmethods__
    for name in BatchAdapter.__abstractmethods__ | {"close", "__init__"}:
        ours = inspect.signature(getattr(TogetherBatchAdapter, name)).parameters
        theirs = inspect.signature(getattr(BatchAdapter, name)).parameters
        for param, spec in theirs.items():
            assert param in ours, f"{name} lacks {param}"
            assert ours[param].kind == spec.kind, f"{name}.{param}"
    for attr in ("name", "conn_types", "max_requests", "max_payload_bytes", "allows_per_request_model"):
        assert hasattr(TogetherBatchAdapter, attr)


def test_dispatch_finds_the_adapter_by_entry_point_for_together_and_pydanticai_connections():
    assert dispatch.get_adapter_class("together", "together:meta-llama/x") is TogetherBatchAdapter
    assert dispatch.get_adapter_class("pydanticai", "together:meta-llama/x") is TogetherBatchAdapter
    with pytest.raises(BatchProviderNotYetSupportedError, match="'together'"):
        dispatch.get_adapter_class("http", "together:meta-llama/x")


def test_dispatch_builds_the_adapter_from_the_connection(together_conn, emu):
    built = dispatch.build_adapter("together", llm_conn_id=together_conn)
    try:
        assert isinstance(built, TogetherBatchAdapter)
        assert built.hook.settings.base_url == emu.url
        built.hook.list_batches()
    finally:
        built.close()


def test_key_and_base_url_follow_the_hooks_rules(emu, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", TEST_KEY)
    # no password: TOGETHER_API_KEY; a host without scheme and with /v1, as the connection form allows
    made = TogetherBatchAdapter(api_key=None, base_url=emu.url.removeprefix("http://") + "/v1/")
    assert made.hook.settings.base_url == emu.url
    assert isinstance(made.hook.list_batches(), list)
    monkeypatch.delenv("TOGETHER_API_KEY")
    with pytest.raises(ValueError, match=r"password field.*TOGETHER_API_KEY"):
        TogetherBatchAdapter(api_key=None, base_url=emu.url)
    monkeypatch.setenv("TOGETHER_BASE_URL", emu.url)
    assert TogetherBatchAdapter(api_key=TEST_KEY).hook.settings.base_url == emu.url
    monkeypatch.delenv("TOGETHER_BASE_URL")
    assert TogetherBatchAdapter(api_key=TEST_KEY).hook.settings.base_url == "https://api.together.ai"


def test_a_refused_key_never_appears_in_the_error(emu):
    wrong = "tk-wrong-key-5ecret"
    with pytest.raises(AuthenticationError) as caught:
        TogetherBatchAdapter(api_key=wrong, base_url=emu.url).get_batch("b-1")
    assert wrong not in str(caught.value)


# ---- before submit -----------------------------------------------------------------------------------


def test_too_many_requests_is_refused_with_the_expand_remedy(adapter):
    requests = [{"prompt": "p"}] * 50_001
    with pytest.raises(
        LLMBatchLimitExceededError, match=r"at most 50,000 requests.*got 50,001.*\.expand\(\)"
    ):
        adapter.validate_requests(requests, model="m", output_spec=TEXT, idempotency_key=KEY)


def test_an_input_over_100_mb_is_refused_before_anything_is_sent(adapter, emu):
    big = "x" * 9_000_000
    with pytest.raises(
        LLMBatchLimitExceededError, match=r"at most 104,857,600 bytes.*request 12 of 12.*\.expand"
    ):
        adapter.validate_requests([{"prompt": big}] * 12, model="m", output_spec=TEXT, idempotency_key=KEY)
    with pytest.raises(LLMBatchLimitExceededError, match=r"Request 0 is .* over the limit of 10,485,760"):
        adapter.validate_requests([{"prompt": big + big}], model="m", output_spec=TEXT, idempotency_key=KEY)
    assert emu.requests_log(method="POST") == []


def test_custom_ids_too_long_and_foreign_models_are_refused(adapter):
    with pytest.raises(LLMBatchLimitExceededError, match="64-character limit"):
        adapter.validate_requests(
            [{"prompt": "p"}] * 10, model="m", output_spec=TEXT, idempotency_key="k" * 63
        )
    with pytest.raises(LLMBatchModelMismatchError, match="openai:gpt-5"):
        adapter.validate_requests(
            [{"prompt": "p", "model": "openai:gpt-5"}], model="m", output_spec=TEXT, idempotency_key=KEY
        )


def test_the_output_directive_is_togethers_json_schema_response_format():
    spec = build_output_spec(Verdict)
    directive = TogetherBatchAdapter(api_key=TEST_KEY).build_output_directive(spec)
    assert directive == {
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Verdict", "schema": Verdict.model_json_schema()},
        }
    }
    assert TogetherBatchAdapter(api_key=TEST_KEY).build_output_directive(TEXT) == {}


def test_submit_uploads_the_lines_under_the_key_and_fingerprint(adapter, emu, fast_clock):
    prompts = ["one", {"prompt": "two", "system_prompt": "Be brief.", "max_tokens": 5, "params": {"seed": 1}}]
    batch_id = submit(adapter, prompts, spec=build_output_spec(Verdict))
    job = adapter.hook.get_batch(batch_id)
    (uploaded,) = [f for f in adapter.hook.list_files() if f.id == job.input_file_id]
    assert uploaded.filename == f"llm-batch.af-{KEY}-{FINGERPRINT[:12]}.jsonl"
    lines = [json.loads(line) for line in emu.file_path(job.input_file_id).read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == [f"{KEY}-0", f"{KEY}-1"]
    first, second = (line["body"] for line in lines)
    assert first["messages"] == [{"role": "user", "content": "one"}] and first["max_tokens"] == 1024
    assert second["messages"][0] == {"role": "system", "content": "Be brief."}
    assert second["max_tokens"] == 5 and second["seed"] == 1
    assert first["response_format"]["json_schema"]["schema"] == Verdict.model_json_schema()


# ---- status, results, cancel ----------------------------------------------------------------------------


def test_every_together_status_maps_onto_common_ais_vocabulary():
    assert set(adapter_module._STATUS) == set(BatchStatus)
    assert adapter_module._STATUS[BatchStatus.CANCELING] == "in_progress"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("VALIDATING", "in_progress"),
        ("IN_PROGRESS", "in_progress"),
        ("COMPLETED", "completed"),
        ("FAILED", "failed"),
        ("EXPIRED", "expired"),
        ("CANCELLED", "cancelled"),
    ],
)
def test_get_batch_maps_the_status(adapter, emu, status, expected):
    batch_id = submit(adapter, ["a"])
    emu.set_batch_status(batch_id, status, error="why" if status in ("FAILED", "EXPIRED") else None)
    got = adapter.get_batch(batch_id)
    assert got.status == expected and got.counts is None
    assert (got.error_message == f"Together batch {batch_id} ended {status}: why") == (
        status in ("FAILED", "EXPIRED")
    )


def test_an_unknown_batch_is_a_404_common_ai_recognises(adapter):
    with pytest.raises(NotFoundError) as caught:
        adapter.get_batch("no-such-batch")
    assert caught.value.status_code == 404
    with pytest.raises(NotFoundError):
        adapter.iter_results("no-such-batch")  # raised at the call, not on first iteration


def test_results_of_a_completed_batch(adapter, fast_clock):
    spec = build_output_spec(str)
    batch_id = submit(adapter, ["a", {"prompt": "b", "model": "together:emulator/request-error"}, "c"])
    items = sorted(adapter.iter_results(batch_id), key=lambda item: item.index)
    assert [(i.index, i.provider_status) for i in items] == [(0, "success"), (1, "errored"), (2, "success")]
    assert items[0].raw == "Emulated answer to: a" and items[0].finish_reason == "stop"
    assert items[0].usage == {"input_tokens": 1, "output_tokens": 5} and items[0].model == "test/model"
    assert items[1].error == {
        "type": "provider_error",
        "message": "emulator: request failed on purpose",
        "provider_code": "400",
        "stage": "provider",
    }
    assert adapter.extract_output(items[0], spec).text == "Emulated answer to: a"
    assert adapter.extract_output(items[1], spec).kind == "absent"


def test_requests_an_expired_or_cancelled_batch_never_answered_are_reported_so(adapter, emu, fast_clock):
    batch_id = submit(adapter, ["a", "b", {"prompt": "c", "model": "together:emulator/batch-expire"}])
    statuses = sorted((i.index, i.provider_status) for i in adapter.iter_results(batch_id))
    assert statuses == [(0, "success"), (1, "expired"), (2, "expired")]
    emu.set_clock(validating_seconds=30)
    running = submit(adapter, ["a", "b"], key="fedcba9876543210")
    adapter.cancel_batch(running)
    adapter.cancel_batch(running)  # a second cancel is harmless
    assert adapter.get_batch(running).status == "cancelled"
    assert sorted(i.provider_status for i in adapter.iter_results(running)) == ["cancelled", "cancelled"]


def test_results_of_a_running_batch_are_refused(adapter, emu):
    emu.set_clock(validating_seconds=30)
    with pytest.raises(ValueError, match="not finished"):
        adapter.iter_results(submit(adapter, ["a"]))


# ---- orphan lookup and close ------------------------------------------------------------------------


def test_find_orphaned_batch_reads_the_key_back_from_the_file_name(adapter, emu):
    before = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    first = submit(adapter, ["a"])
    # The same task instance with other input: another fingerprint, another file, another batch.
    other = submit(adapter, ["b"], fingerprint="e" * 64)
    assert adapter.find_orphaned_batch(KEY, FINGERPRINT, before) == first
    assert adapter.find_orphaned_batch(KEY, "e" * 64, before) == other
    assert adapter.find_orphaned_batch("1111111111111111", FINGERPRINT, before) is None
    # A batch older than the intent record (beyond the clock skew allowed) belongs to an earlier try.
    later = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    assert adapter.find_orphaned_batch(KEY, FINGERPRINT, later) is None
    # Identical input submitted again: the same file (Together keeps one copy), the newest batch wins.
    again = submit(adapter, ["a"])
    assert adapter.find_orphaned_batch(KEY, FINGERPRINT, before) == again


def test_a_failed_orphan_lookup_raises_rather_than_answering_none(adapter, emu):
    emu.set_faults({"method": "GET", "path": "^/v1/files$", "kind": "status", "status": 500, "times": None})
    with pytest.raises(ServerError):
        adapter.find_orphaned_batch(KEY, FINGERPRINT, datetime.now(UTC).isoformat())


def test_close_lets_go_of_the_session_and_may_repeat(adapter):
    adapter.hook.list_batches()
    session = adapter.hook.__dict__["_session"]
    adapter.close()
    adapter.close()
    assert "_session" not in adapter.hook.__dict__
    assert not session.adapters or all(not a.poolmanager.pools for a in session.adapters.values())
