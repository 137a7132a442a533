"""The emulator's Batches API over real HTTP: creation, lifecycle, outputs, outcomes on purpose."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import requests

from tests.emulator.helpers import (
    CHAT,
    REQUIRED_JOB_FIELDS,
    assert_batch_error,
    chat_line,
    content_lines,
    create,
    finish,
    get_batch,
    jsonl,
    submit,
    upload,
)


def test_create_envelope_and_batch_job_shape(emu, http):
    file_record = upload(emu, http, jsonl([chat_line("a")]))
    response = http.post(f"{emu.url}/v1/batches", json={"endpoint": CHAT, "input_file_id": file_record["id"]})
    assert response.status_code == 201
    envelope = response.json()
    assert set(envelope) == {"job"}, "a warning only comes when there is something to warn about"
    job = envelope["job"]
    assert set(job) == REQUIRED_JOB_FIELDS
    uuid.UUID(job["id"])
    assert job["status"] == "VALIDATING" and job["progress"] == 0.0
    assert job["input_file_id"] == file_record["id"] and job["file_size_bytes"] == file_record["bytes"]
    created = dt.datetime.strptime(job["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    deadline = dt.datetime.strptime(job["job_deadline"], "%Y-%m-%dT%H:%M:%SZ")
    assert deadline - created == dt.timedelta(hours=24)


def test_create_warns_about_ignored_completion_window(emu, http):
    file_id = upload(emu, http, jsonl([chat_line("a")]))["id"]
    body = {"endpoint": CHAT, "input_file_id": file_id, "completion_window": "48h", "model_id": "meta/llama"}
    envelope = http.post(f"{emu.url}/v1/batches", json=body).json()
    assert "completion_window" in envelope["warning"]
    assert envelope["job"]["model_id"] == "meta/llama"
    same_window = http.post(f"{emu.url}/v1/batches", json={**body, "completion_window": "24h"}).json()
    assert "warning" not in same_window


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"input_file_id": "file-x"}, "endpoint"),
        ({"endpoint": CHAT}, "input_file_id"),
        ({"endpoint": "/v1/embeddings", "input_file_id": "file-x"}, "/v1/audio/transcriptions"),
        ({"endpoint": CHAT, "input_file_id": "file-does-not-exist"}, "file-does-not-exist"),
        ({"endpoint": CHAT, "input_file_id": "file-x", "priority": "high"}, "priority"),
        ([], "JSON object"),
    ],
)
def test_create_validation(emu, http, body, needle):
    response = http.post(f"{emu.url}/v1/batches", json=body)
    assert response.status_code == 400
    assert_batch_error(response.json())
    assert needle in response.json()["error"]


def test_create_rejects_non_json_body(emu, http):
    response = http.post(f"{emu.url}/v1/batches", data=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert_batch_error(response.json())


def test_list_and_get(emu, http):
    first = submit(emu, http, [chat_line("a")])
    second = submit(emu, http, [chat_line("b")])
    listed = http.get(f"{emu.url}/v1/batches").json()
    assert isinstance(listed, list)
    assert [job["id"] for job in listed] == [second["id"], first["id"]]
    missing = http.get(f"{emu.url}/v1/batches/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert_batch_error(missing.json())


# Lifecycle and outcomes


def test_lifecycle_on_the_clock_and_completed_output(emu, http):
    lines = [chat_line(f"req-{i}", f"question number {i} " + "x" * 60) for i in range(8)]
    # Long phases, moved through by the emulator's clock: each status is seen whatever the machine's pace.
    emu.set_clock(validating_seconds=1000, processing_seconds=1000)
    try:
        job = submit(emu, http, lines)
    finally:
        emu.set_clock(validating_seconds=0.2, processing_seconds=0.6)  # the session's (tests/conftest.py)
    assert get_batch(emu, http, job["id"])["status"] == "VALIDATING"
    emu.advance_clock(1500)
    running = get_batch(emu, http, job["id"])
    assert running["status"] == "IN_PROGRESS" and 0.0 < running["progress"] < 100.0
    emu.advance_clock(1000)
    done = get_batch(emu, http, job["id"])
    assert done["status"] == "COMPLETED" and done["progress"] == 100.0
    assert set(done) == REQUIRED_JOB_FIELDS | {"output_file_id", "completed_at"}, "absent fields are omitted"
    output_meta = http.get(f"{emu.url}/v1/files/{done['output_file_id']}").json()
    assert output_meta["purpose"] == "batch-generated"
    assert output_meta["filename"] == f"batch_{job['id']}_output.jsonl"
    out = content_lines(emu, http, done["output_file_id"])
    ids = [line["custom_id"] for line in out]
    assert sorted(ids) == sorted(line["custom_id"] for line in lines)
    assert ids != [line["custom_id"] for line in lines], "outputs must not come back in input order"
    first = next(line for line in out if line["custom_id"] == "req-3")
    response = first["response"]
    assert response["status_code"] == 200 and response["request_id"]
    body = response["body"]
    assert body["object"] == "chat.completion" and body["model"] == "meta/llama"
    assert (
        body["choices"][0]["message"]["content"]
        == "Emulated answer to: " + lines[3]["body"]["messages"][0]["content"][:40]
    )
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    # Deterministic: a second batch with the same input answers in the same order with the same text.
    again = finish(emu, http, submit(emu, http, lines)["id"])
    assert [line["custom_id"] for line in content_lines(emu, http, again["output_file_id"])] == ids


def test_two_line_output_is_never_in_input_order(emu, http):
    for pair in (["a", "b"], ["b", "a"]):
        done = finish(emu, http, submit(emu, http, [chat_line(i) for i in pair])["id"])
        assert [line["custom_id"] for line in content_lines(emu, http, done["output_file_id"])] != pair


def test_error_file_only_for_bad_lines(emu, http):
    lines = [
        chat_line("good-1"),
        chat_line("bad-model", model="emulator/request-error"),
        {"custom_id": "no-messages", "body": {"model": "m"}},
        chat_line("good-2"),
    ]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "COMPLETED"
    errors = content_lines(emu, http, done["error_file_id"])
    assert {line["custom_id"] for line in errors} == {"bad-model", "no-messages"}
    assert all(set(line["error"]) == {"message", "code"} for line in errors)
    assert {line["custom_id"] for line in content_lines(emu, http, done["output_file_id"])} == {
        "good-1",
        "good-2",
    }

    only_bad = finish(emu, http, submit(emu, http, [chat_line("x", model="emulator/request-error")])["id"])
    assert only_bad["status"] == "COMPLETED"
    assert "output_file_id" not in only_bad and "error_file_id" in only_bad


def test_request_missing_comes_back_in_neither_file(emu, http):
    lines = [
        chat_line("good"),
        chat_line("gone", model="emulator/request-missing"),
        chat_line("bad", model="emulator/request-error"),
    ]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "COMPLETED"
    out = content_lines(emu, http, done["output_file_id"])
    assert [line["custom_id"] for line in out] == ["good"]
    assert [line["custom_id"] for line in content_lines(emu, http, done["error_file_id"])] == ["bad"]
    usage = out[0]["response"]["body"]["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    only_gone = finish(emu, http, submit(emu, http, [chat_line("x", model="emulator/request-missing")])["id"])
    assert only_gone["status"] == "COMPLETED"
    assert "output_file_id" not in only_gone and "error_file_id" not in only_gone


def test_every_completion_answer_reports_usage(emu, http):
    file_id = upload(emu, http, jsonl([{"custom_id": "p", "body": {"model": "m", "prompt": "Once upon"}}]))[
        "id"
    ]
    done = finish(emu, http, create(emu, http, file_id, endpoint="/v1/completions")["id"])
    usage = content_lines(emu, http, done["output_file_id"])[0]["response"]["body"]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_completions_and_audio_endpoints(emu, http):
    file_id = upload(emu, http, jsonl([{"custom_id": "p", "body": {"model": "m", "prompt": "Once upon"}}]))[
        "id"
    ]
    done = finish(emu, http, create(emu, http, file_id, endpoint="/v1/completions")["id"])
    assert (
        content_lines(emu, http, done["output_file_id"])[0]["response"]["body"]["object"] == "text_completion"
    )
    audio = {
        "custom_id": "a",
        "method": "FILE",
        "body": {"model": "openai/whisper-large-v3", "file": "https://x/a.mp3"},
    }
    file_id = upload(emu, http, jsonl([audio]))["id"]
    done = finish(emu, http, create(emu, http, file_id, endpoint="/v1/audio/transcriptions")["id"])
    assert "text" in content_lines(emu, http, done["output_file_id"])[0]["response"]["body"]


def test_batch_fail_on_purpose_keeps_partial_output(emu, http):
    lines = [chat_line("a"), chat_line("b"), chat_line("boom", model="emulator/batch-fail"), chat_line("c")]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "FAILED"
    assert done["error"] == "emulator: batch failed on purpose"
    assert {line["custom_id"] for line in content_lines(emu, http, done["output_file_id"])} == {"a", "b"}
    first_line_fails = finish(
        emu, http, submit(emu, http, [chat_line("x", model="emulator/batch-fail")])["id"]
    )
    assert first_line_fails["status"] == "FAILED" and "output_file_id" not in first_line_fails


def test_batch_expire_on_purpose_keeps_partial_output(emu, http):
    lines = [chat_line(f"r{i}") for i in range(6)] + [chat_line("late", model="emulator/batch-expire")]
    done = finish(emu, http, submit(emu, http, lines)["id"])
    assert done["status"] == "EXPIRED" and "expired" in done["error"]
    assert len(content_lines(emu, http, done["output_file_id"])) == 3
    assert 0 < done["progress"] < 100


def test_never_finish_then_cancel_with_partial_output(emu, http):
    lines = [chat_line(f"r{i}") for i in range(10)] + [chat_line("hang", model="emulator/never-finish")]
    job = submit(emu, http, lines)
    emu.advance_clock(10_000)
    stuck = get_batch(emu, http, job["id"])
    assert stuck["status"] == "IN_PROGRESS" and stuck["progress"] < 100
    cancelled = http.post(f"{emu.url}/v1/batches/{job['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLED"
    assert len(content_lines(emu, http, cancelled.json()["output_file_id"])) == 5
    assert get_batch(emu, http, job["id"])["status"] == "CANCELLED"
    again = http.post(f"{emu.url}/v1/batches/{job['id']}/cancel")
    assert again.status_code == 400
    assert_batch_error(again.json())
    assert "CANCELLED" in again.json()["error"]


def test_cancel_rules(emu, http):
    validating = submit(emu, http, [chat_line("a")])
    cancelled = http.post(f"{emu.url}/v1/batches/{validating['id']}/cancel").json()
    assert cancelled["status"] == "CANCELLED" and "output_file_id" not in cancelled
    emu.advance_clock(60)
    assert get_batch(emu, http, validating["id"])["status"] == "CANCELLED", "cancelled is final"

    completed = finish(emu, http, submit(emu, http, [chat_line("a")])["id"])
    refused = http.post(f"{emu.url}/v1/batches/{completed['id']}/cancel")
    assert refused.status_code == 400
    assert "VALIDATING or IN_PROGRESS" in refused.json()["error"]
    unknown = http.post(f"{emu.url}/v1/batches/{uuid.uuid4()}/cancel")
    assert unknown.status_code == 404
    assert_batch_error(unknown.json())


@pytest.mark.parametrize(
    ("lines", "bad_line", "reason"),
    [
        ([chat_line("a"), chat_line("b"), "{not json"], 3, "not valid JSON"),
        ([chat_line("a"), {"body": {"model": "m"}}], 2, "custom_id"),
        ([chat_line("a"), chat_line("a")], 2, "duplicates line 1"),
        ([{"custom_id": "a", "body": {"messages": []}}], 1, "body.model"),
        ([chat_line("x" * 65)], 1, "64"),
        (["[1, 2]"], 1, "JSON object"),
    ],
)
def test_malformed_input_fails_during_validation(emu, http, lines, bad_line, reason):
    job = submit(emu, http, lines)
    emu.advance_clock(0.3)  # past VALIDATING only: the failure must not wait for processing
    done = get_batch(emu, http, job["id"])
    assert done["status"] == "FAILED"
    assert f"line {bad_line}" in done["error"] and reason in done["error"]
    assert "output_file_id" not in done and "error_file_id" not in done


def test_force_status_through_control_route(emu, http):
    job = submit(emu, http, [chat_line("a"), chat_line("b")])
    forced = requests.post(
        f"{emu.url}/_emulator/batches/{job['id']}/status", json={"status": "EXPIRED", "error": "too slow"}
    )
    assert forced.status_code == 200
    assert forced.json()["status"] == "EXPIRED" and forced.json()["error"] == "too slow"
    assert get_batch(emu, http, job["id"])["status"] == "EXPIRED"

    early = submit(emu, http, [chat_line("a"), chat_line("b")])
    completed = emu.set_batch_status(early["id"], "COMPLETED")
    assert (
        completed["status"] == "COMPLETED" and len(content_lines(emu, http, completed["output_file_id"])) == 2
    )

    pinned = submit(emu, http, [chat_line("a")])
    emu.set_batch_status(pinned["id"], "IN_PROGRESS")
    emu.advance_clock(60)
    assert get_batch(emu, http, pinned["id"])["status"] == "IN_PROGRESS", "a forced status stays put"

    assert (
        requests.post(f"{emu.url}/_emulator/batches/{job['id']}/status", json={"status": "DONE"}).status_code
        == 400
    )
    assert (
        requests.post(f"{emu.url}/_emulator/batches/nope/status", json={"status": "FAILED"}).status_code
        == 404
    )


def test_input_deleted_before_validation_fails_batch(emu, http):
    file_id = upload(emu, http, jsonl([chat_line("a")]))["id"]
    job = create(emu, http, file_id)
    http.delete(f"{emu.url}/v1/files/{file_id}")
    done = finish(emu, http, job["id"])
    assert done["status"] == "FAILED" and file_id in done["error"]


def test_a_flaky_request_fails_its_first_answers_then_succeeds(emu, http):
    lines = [
        chat_line("flaky-1", model="emulator/request-flaky"),
        chat_line("flaky-2", model="emulator/request-flaky-2"),
    ]
    answers = []
    for _ in range(3):
        done = finish(emu, http, submit(emu, http, lines)["id"])
        assert done["status"] == "COMPLETED"
        errored = (
            {row["custom_id"]: row["error"] for row in content_lines(emu, http, done["error_file_id"])}
            if done.get("error_file_id")
            else {}
        )
        answered = (
            {row["custom_id"] for row in content_lines(emu, http, done["output_file_id"])}
            if done.get("output_file_id")
            else set()
        )
        answers.append((sorted(errored), sorted(answered)))
        for error in errored.values():
            assert error["code"] == 503 and "overloaded" in error["message"]
    assert answers == [(["flaky-1", "flaky-2"], []), (["flaky-2"], ["flaky-1"]), ([], ["flaky-1", "flaky-2"])]


def test_a_batch_expires_once_then_the_same_request_completes(emu, http):
    lines = [
        chat_line("once", model="emulator/batch-expire-once"),
        chat_line("plain-1"),
        chat_line("plain-2"),
    ]
    first = finish(emu, http, submit(emu, http, lines)["id"])
    assert first["status"] == "EXPIRED"
    second = finish(
        emu, http, submit(emu, http, [chat_line("once", model="emulator/batch-expire-once")])["id"]
    )
    assert second["status"] == "COMPLETED"
    assert [row["custom_id"] for row in content_lines(emu, http, second["output_file_id"])] == ["once"]
