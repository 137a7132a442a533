"""SubmitBatchOperator(split=True) against the emulator: an input past the per-batch limits becomes one
batch per part, in input order, each made from exactly its slice of the input; a retry re-attaches to
the parts an earlier try made. The emulator's per-batch limits are set low, so small files stand for
files of 50,000 requests or 100 MB."""

from __future__ import annotations

import importlib
import json
import uuid

import pytest

from together_provider._compat import AIRFLOW_V_3_0_PLUS, AirflowFailException
from together_provider.client.errors import ServerError
from together_provider.client.resubmission import run_key, upload_name
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import STATE_BATCH_ID, STATE_BATCH_IDS, SubmitBatchOperator

from ..helpers import RecordingTI, wait_terminal


@pytest.fixture
def limits(emu):
    """The emulator refuses, as Together does, a batch of more than 3 requests or 2,000 bytes."""
    emu.set_limits(max_requests_per_batch=3, max_bytes_per_batch=2_000)
    yield
    emu.set_limits(max_requests_per_batch=50_000, max_bytes_per_batch=100 * 1024 * 1024)


def requests_file(path, n, models=None):
    """``n`` request lines of content no other test uploads (the emulator reuses a file of the same
    SHA-256 under its first name)."""
    tag = uuid.uuid4().hex
    with open(path, "w") as handle:
        for i in range(n):
            model = (models or {}).get(i, "split/model")
            body = {"model": model, "messages": [{"role": "user", "content": f"{tag} question {i}"}]}
            handle.write(json.dumps({"custom_id": f"r{i}", "body": body}) + "\n")
    return path


class Store:
    """Airflow 3.3's task state store, as operators see it: get and set, kept across tries."""

    def __init__(self):
        self.values = {}

    def get(self, key):
        return self.values.get(key)

    def set(self, key, value):
        self.values[key] = value


def ti(try_number=1):
    instance = RecordingTI()
    instance.try_number = try_number
    return instance


def submit(path, *, try_number=1, store=None, **kwargs):
    kwargs.setdefault("max_requests_per_batch", 3)
    op = SubmitBatchOperator(task_id="submit", input_file_path=str(path), split=True, **kwargs)
    context = {"ti": ti(try_number)}
    if store is not None:
        context["task_state_store"] = store
    return op.execute(context), context["ti"]


def input_of(emu, hook, batch_id):
    return emu.file_path(hook.get_batch(batch_id).input_file_id).read_bytes()


def creates(emu):
    return [e for e in emu.requests_log(method="POST", path="/v1/batches") if e["status"] == 201]


def uploads(emu):
    return emu.requests_log(method="POST", path="/v1/files")


def test_parts_are_batches_in_input_order_each_of_its_slice(together_conn, emu, limits, tmp_path):
    src = requests_file(tmp_path / "split_ten.jsonl", 10)
    ids, instance = submit(src)
    assert isinstance(ids, list) and len(ids) == 4 and all(isinstance(i, str) for i in ids)
    assert instance.xcoms["batch_ids"] == ids
    assert "batch_id" not in instance.xcoms, "split pushes the list only"
    hook = TogetherHook()
    lines = src.read_bytes().splitlines(keepends=True)
    assert [input_of(emu, hook, i) for i in ids] == [b"".join(lines[k : k + 3]) for k in (0, 3, 6, 9)]
    key = run_key("d", "manual__1", "submit", -1)
    names = [hook.get_file(hook.get_batch(i).input_file_id).filename for i in ids]
    assert [n.rsplit("-", 1)[0] for n in names] == [f"split_ten.af-{key}-p00{k}of004" for k in (1, 2, 3, 4)]
    # Within the emulator's limits, every part runs to the end.
    assert [wait_terminal(hook, i).raw_status for i in ids] == ["COMPLETED"] * 4


def test_the_emulator_refuses_an_unsplit_input_past_its_limits(together_conn, emu, limits, tmp_path):
    """What makes the split tests mean something: the same input, unsplit, fails as Together fails it."""
    hook = TogetherHook()
    many = SubmitBatchOperator(task_id="s", input_file_path=str(requests_file(tmp_path / "split_a.jsonl", 4)))
    batch = wait_terminal(hook, many.execute({"ti": ti()}))
    assert batch.raw_status == "FAILED" and "more than 3 requests" in (batch.error or "")
    big = requests_file(tmp_path / "split_b.jsonl", 3, models={0: "split/" + "m" * 1_900})
    batch = wait_terminal(
        hook, SubmitBatchOperator(task_id="s", input_file_path=str(big)).execute({"ti": ti()})
    )
    assert batch.raw_status == "FAILED" and "over the limit of 2000 bytes" in (batch.error or "")


def test_the_byte_limit_cuts_too(together_conn, emu, limits, tmp_path):
    src = requests_file(
        tmp_path / "split_wide.jsonl", 6, models={i: "split/" + "w" * 1_100 for i in range(6)}
    )
    ids, _ = submit(src, max_requests_per_batch=50_000, max_bytes_per_batch=2_000)
    hook = TogetherHook()
    slices = [input_of(emu, hook, i) for i in ids]
    assert len(ids) == 6 and b"".join(slices) == src.read_bytes()
    assert all(len(s) <= 2_000 for s in slices)
    assert [wait_terminal(hook, i).raw_status for i in ids] == ["COMPLETED"] * 6


def test_a_duplicate_id_in_a_later_part_fails_before_any_upload(together_conn, emu, limits, tmp_path):
    src = requests_file(tmp_path / "split_dup.jsonl", 9)
    lines = src.read_text().splitlines(keepends=True)
    lines[7] = lines[7].replace('"custom_id": "r7"', '"custom_id": "r1"')
    src.write_text("".join(lines))
    with pytest.raises(AirflowFailException, match=r"dup\.jsonl.*line 8.*'r1' is used twice"):
        submit(src)
    assert uploads(emu) == [] and creates(emu) == []


def test_a_crash_after_part_two_of_four_then_the_retry_makes_only_the_rest(
    together_conn, emu, limits, tmp_path
):
    src = requests_file(tmp_path / "split_crash.jsonl", 12)
    # The third create is refused (a 503 of an overloaded API: the create is never retried blindly).
    emu.set_faults(
        {"method": "POST", "path": "^/v1/batches$", "kind": "status", "status": 503, "after": 2, "times": 1}
    )
    with pytest.raises(ServerError, match="503"):
        submit(src)
    first = creates(emu)
    assert len(first) == 2
    emu.clear_requests_log()
    ids, _ = submit(src, try_number=2)
    hook = TogetherHook()
    assert len(ids) == 4 and len(creates(emu)) == 2, "parts 3 and 4 only"
    assert len(emu.requests_log(method="GET", path="/v1/files")) == 1, "files listed once for all parts"
    assert len(emu.requests_log(method="GET", path="/v1/batches")) == 1
    made_first = {b.id for b in hook.list_batches()} - set(ids[2:])
    assert set(ids[:2]) <= made_first
    # Part 3 was uploaded before its create failed: the retry finds it by name; only part 4 is sent.
    assert len([e for e in uploads(emu) if e["status"] in (200, 201, 302)]) == 1
    lines = src.read_bytes().splitlines(keepends=True)
    assert [input_of(emu, hook, i) for i in ids] == [b"".join(lines[k : k + 3]) for k in (0, 3, 6, 9)]


def test_force_new_submits_every_part_again(together_conn, emu, limits, tmp_path):
    src = requests_file(tmp_path / "split_again.jsonl", 5)
    first, _ = submit(src)
    emu.clear_requests_log()
    again, _ = submit(src, try_number=2, force_new=True)
    assert len(again) == 2 and not set(again) & set(first)
    assert len(creates(emu)) == 2


def test_the_task_state_store_holds_the_list_and_a_retry_resumes_from_it(
    together_conn, emu, limits, tmp_path
):
    src = requests_file(tmp_path / "split_stored.jsonl", 7)
    store = Store()
    ids, _ = submit(src, store=store)
    assert store.values == {STATE_BATCH_IDS: ids}, f"{STATE_BATCH_ID} belongs to split=False"
    emu.clear_requests_log()
    again, instance = submit(src, try_number=2, store=store)
    assert again == ids and instance.xcoms["batch_ids"] == ids
    assert {e["method"] for e in emu.requests_log()} == {"GET"}, "nothing read, listed or sent again"


def test_a_part_whose_batch_fails_is_submitted_like_the_others(together_conn, emu, limits, tmp_path):
    src = requests_file(tmp_path / "split_onefails.jsonl", 9, models={4: "emulator/batch-fail"})
    ids, _ = submit(src)
    hook = TogetherHook()
    assert [wait_terminal(hook, i).raw_status for i in ids] == ["COMPLETED", "FAILED", "COMPLETED"]


def test_split_false_is_unchanged(together_conn, emu, tmp_path):
    src = requests_file(tmp_path / "split_one.jsonl", 4)
    instance = ti()
    got = SubmitBatchOperator(task_id="submit", input_file_path=str(src)).execute({"ti": instance})
    assert isinstance(got, str) and instance.xcoms["batch_id"] == got and "batch_ids" not in instance.xcoms
    name = TogetherHook().get_file(TogetherHook().get_batch(got).input_file_id).filename
    assert "-p0" not in name and name.startswith(f"split_one.af-{run_key('d', 'manual__1', 'submit', -1)}-")


@pytest.fixture
def memory_store():
    from fsspec.implementations.memory import MemoryFileSystem

    fs = MemoryFileSystem()
    importlib.import_module("airflow.sdk.io" if AIRFLOW_V_3_0_PLUS else "airflow.io.store").attach(
        "memory", fs=fs
    )
    folder = f"/split-{uuid.uuid4().hex}"
    yield fs, folder
    if fs.exists(folder):
        fs.rm(folder, recursive=True)


def test_an_input_in_object_storage_is_split_from_the_store(
    together_conn, emu, limits, memory_store, tmp_path
):
    fs, folder = memory_store
    data = requests_file(tmp_path / "split_local.jsonl", 8).read_bytes()
    fs.pipe(f"{folder}/in/requests.jsonl", data)
    ids, _ = submit(f"memory://{folder}/in/requests.jsonl")
    hook = TogetherHook()
    lines = data.splitlines(keepends=True)
    assert [input_of(emu, hook, i) for i in ids] == [b"".join(lines[k : k + 3]) for k in (0, 3, 6)]
    assert [wait_terminal(hook, i).raw_status for i in ids] == ["COMPLETED"] * 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"wait_for_completion": True}, r"BatchCompletionSensor\(.*batch_id=submit.output\)"),
        ({"input_file_id": "file-1", "input_file_path": None}, "give input_file_path, not input_file_id"),
        ({"max_requests_per_batch": 50_001}, r"max_requests_per_batch=50001.*from 1 to 50,000"),
        ({"max_bytes_per_batch": 0}, r"max_bytes_per_batch=0.*from 1 to"),
        ({"split": False, "max_requests_per_batch": 10}, "apply only to a split input: pass split=True"),
    ],
)
def test_split_arguments_that_cannot_work_are_refused(kwargs, message):
    arguments = {"task_id": "s", "input_file_path": "in.jsonl", "split": True, **kwargs}
    with pytest.raises(ValueError, match=message):
        SubmitBatchOperator(**arguments)


def test_the_emulator_limits_route(emu):
    import requests

    try:
        got = requests.post(f"{emu.url}/_emulator/limits", json={"max_requests_per_batch": 7}, timeout=10)
        assert got.status_code == 200 and got.json()["max_requests_per_batch"] == 7
        assert requests.get(f"{emu.url}/_emulator/limits", timeout=10).json()["max_requests_per_batch"] == 7
        refused = requests.post(f"{emu.url}/_emulator/limits", json={"max_bytes_per_batch": 0}, timeout=10)
        assert refused.status_code == 400 and "max_bytes_per_batch" in refused.json()["error"]
    finally:
        emu.set_limits(max_requests_per_batch=50_000, max_bytes_per_batch=100 * 1024 * 1024)


@pytest.mark.parametrize(
    ("part", "expected"),
    [
        ((3, 4), "big.af-0123456789abcdef-p003of004-ffffffffffff.jsonl"),
        ((7, 1234), "big.af-0123456789abcdef-p0007of1234-ffffffffffff.jsonl"),
    ],
)
def test_a_part_name_carries_its_place(part, expected):
    assert upload_name("/data/big.jsonl", "0123456789abcdef", "f" * 64, part=part) == expected
    assert (
        upload_name("/data/big.jsonl", "0123456789abcdef", "f" * 64)
        == "big.af-0123456789abcdef-ffffffffffff.jsonl"
    )
