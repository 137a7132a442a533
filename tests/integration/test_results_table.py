"""BatchResultsOperator(result_format="parquet") over real HTTP to the emulator: a typed table per batch,
locally and in a store, a list of batches, a repair merged into the landed table, the usage and cost in
the manifest and the asset event, a bad price refused before anything lands, Parquet refused at once where
pyarrow is missing, and memory flat while a large table is written."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from together_provider._compat import AirflowFailException
from together_provider.hooks.together import TogetherHook
from together_provider.operators.results import BatchResultsOperator

from ..conftest import ROOT, connection_uri_env
from ..helpers import RecordingTI, wait_terminal, write_requests

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (the parquet extra brings it)")
pq = pytest.importorskip("pyarrow.parquet")

SCHEMA = {
    "type": "object",
    "properties": {"sentiment": {"enum": ["positive", "negative"]}, "score": {"type": "integer"}},
    "required": ["sentiment", "score"],
}


def line(custom_id, model="test/model", **body):
    return {
        "custom_id": custom_id,
        "body": {"model": model, "messages": [{"role": "user", "content": custom_id}], **body},
    }


STRUCTURED = line(
    "json-1", response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": SCHEMA}}
)
MIXED = [STRUCTURED, line("err-1", "emulator/request-error"), line("gone-1", "emulator/request-missing")]


def finished_batch(tmp_path, n=2, extra_lines=()):
    hook = TogetherHook()
    src = write_requests(tmp_path / f"in-{uuid.uuid4().hex[:8]}.jsonl", n=n, extra_lines=extra_lines)
    return wait_terminal(hook, hook.create_batch(hook.upload_file(src).id).id)


def land(batch_id, result_path, **options):
    ti = RecordingTI()
    operator = BatchResultsOperator(
        task_id="results", batch_id=batch_id, result_path=str(result_path), result_format="parquet", **options
    )
    return operator.execute({"ti": ti}), ti, operator


def table_rows(source):
    return {row["custom_id"]: row for row in pq.read_table(source).to_pylist()}


def test_a_mixed_batch_lands_as_a_typed_table(together_conn, tmp_path):
    batch = finished_batch(tmp_path, n=2, extra_lines=MIXED)
    target = tmp_path / "out" / "rows.parquet"
    manifest, ti, _ = land(batch.id, target)

    schema = pq.read_schema(target)
    assert schema.names[:4] == ["custom_id", "status", "round", "batch_id"]
    assert schema.field("prompt_tokens").type == pa.int64() and schema.field("round").type == pa.int32()
    rows = table_rows(target)
    assert {cid: row["status"] for cid, row in rows.items()} == {
        "r0": "succeeded",
        "r1": "succeeded",
        "json-1": "succeeded",
        "err-1": "errored",
        "gone-1": "missing",
    }
    plain = rows["r0"]
    assert plain["content"] == "Emulated answer to: question 0" and plain["content_json"] is None
    assert plain["finish_reason"] == "stop" and plain["round"] == 0 and plain["batch_id"] == batch.id
    assert plain["total_tokens"] == plain["prompt_tokens"] + plain["completion_tokens"] > 0
    assert json.loads(plain["response"])["choices"][0]["message"]["content"] == plain["content"]
    structured = json.loads(rows["json-1"]["content_json"])
    assert structured["sentiment"] == "positive" and isinstance(structured["score"], int)
    err = rows["err-1"]
    assert (err["error_code"], err["error_message"]) == ("400", "emulator: request failed on purpose")
    assert err["content"] is None and err["total_tokens"] is None
    gone = rows["gone-1"]
    assert gone["model"] == "emulator/request-missing" and gone["response"] is None and gone["error"] is None

    assert manifest["format"] == "parquet" and manifest["rows"] == 5 == manifest["counts"]["total"]
    assert manifest["result_uri"] == str(target)
    assert ti.xcoms["manifest"] == manifest
    assert [p.name for p in target.parent.iterdir()] == ["rows.parquet"], "no temporary file left"


def test_the_table_lands_in_a_store(together_conn, tmp_path, memory_store):
    fs, folder = memory_store
    batch = finished_batch(tmp_path, n=2, extra_lines=MIXED[1:])
    manifest, _ti, _ = land(batch.id, f"memory://{folder}/rows.parquet")
    assert manifest["result_uri"].endswith(f"{folder}/rows.parquet")
    rows = table_rows(io.BytesIO(fs.cat_file(f"{folder}/rows.parquet")))
    assert sorted(row["status"] for row in rows.values()) == ["errored", "missing", "succeeded", "succeeded"]
    assert fs.ls(folder, detail=False) == [f"{folder}/rows.parquet"], "no temporary key left"


def test_a_list_of_batches_lands_as_one_table_naming_each_row_s_batch(together_conn, tmp_path):
    first, second = finished_batch(tmp_path, n=1), finished_batch(tmp_path, n=1)
    # Both inputs use r0: the second is landed once, from the first batch.
    manifest, _ti, _ = land([first.id, second.id], tmp_path / "rows.parquet")
    rows = table_rows(tmp_path / "rows.parquet")
    assert list(rows) == ["r0"] and rows["r0"]["batch_id"] == first.id
    assert manifest["batch_ids"] == [first.id, second.id] and manifest["rows"] == 1


def test_a_repair_merges_each_round_into_the_landed_table(together_conn, tmp_path):
    p = uuid.uuid4().hex[:6]
    lines = [
        line(f"{p}-a"),
        line(f"{p}-f1", "emulator/request-flaky"),
        line(f"{p}-f2", "emulator/request-flaky"),
    ]
    lines.append(line(f"{p}-bad", "emulator/request-error"))
    batch = finished_batch(tmp_path, n=0, extra_lines=lines)
    target = tmp_path / "rows.parquet"
    prices = {
        "test/model": {"input": 2.0, "output": 4.0},
        "emulator/request-flaky": {"input": 1.0, "output": 1.0},
    }
    manifest, _ti, _ = land(
        batch.id, target, retry_failed_requests=2, deferrable=False, poll_interval=0.2, prices=prices
    )
    rows = table_rows(target)
    assert len(rows) == 4
    assert {cid: (row["status"], row["round"]) for cid, row in rows.items()} == {
        f"{p}-a": ("succeeded", 0),
        f"{p}-f1": ("succeeded", 1),
        f"{p}-f2": ("succeeded", 1),
        f"{p}-bad": ("errored", 0),
    }
    round_one = manifest["rounds"][1]
    assert {rows[f"{p}-f1"]["batch_id"]} == set(round_one["batch_ids"]) and rows[f"{p}-a"][
        "batch_id"
    ] == batch.id
    assert json.loads(rows[f"{p}-bad"]["error"]) == {
        "message": "emulator: request failed on purpose",
        "code": 400,
    }
    assert manifest["counts"] == {"succeeded": 3, "errored": 1, "missing": 0, "total": 4}
    assert manifest["rows"] == 4 and manifest["format"] == "parquet"

    def cost(model, got):
        price = prices[model]
        listed = got["prompt_tokens"] * price["input"] + got["completion_tokens"] * price["output"]
        return listed / 1e6 * 0.5

    by_model = manifest["usage_by_model"]
    assert by_model["emulator/request-flaky"]["requests"] == 2 and by_model["test/model"]["requests"] == 1
    for model, got in by_model.items():
        assert got["cost"] == pytest.approx(cost(model, got))
    assert manifest["cost"] == pytest.approx(sum(line["cost"] for line in by_model.values()))
    assert manifest["unpriced_models"] == []
    # Each round's cost is what its own answers used; together they are the whole.
    assert sum(r["cost"] for r in manifest["rounds"]) == pytest.approx(manifest["cost"])
    assert manifest["rounds"][1]["cost"] == pytest.approx(by_model["emulator/request-flaky"]["cost"])


def test_prices_come_from_the_connection_and_the_operator_s_win(emu, monkeypatch, tmp_path):
    extra = {"max_retries": 3, "prices": {"test/model": {"input": 1.0, "output": 1.0}}, "batch_discount": 0.2}
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, **extra))
    batch = finished_batch(tmp_path, n=2, extra_lines=[line("other", "other/model")])
    usage = None
    for options, discount, price in (
        ({}, 0.2, 1.0),
        ({"prices": {"test/model": {"input": 3, "output": 3}}, "batch_discount": 0}, 0.0, 3.0),
    ):
        manifest, _ti, _ = land(batch.id, tmp_path / f"rows-{discount}.parquet", **options)
        usage = manifest["usage_by_model"]["test/model"]
        assert manifest["batch_discount"] == discount
        assert usage["cost"] == pytest.approx(usage["total_tokens"] * price / 1e6 * (1 - discount))
        assert manifest["usage_by_model"]["other/model"]["cost"] is None
        assert manifest["unpriced_models"] == ["other/model"] and manifest["cost"] is None


def test_the_asset_event_carries_the_format_and_the_cost(together_conn, tmp_path):
    from airflow.providers.common.compat.assets import Asset

    from ..unit.tasks.test_assets import _Events, _Task

    batch = finished_batch(tmp_path, n=2)
    asset, events = Asset("together://table"), _Events()
    operator = BatchResultsOperator(
        task_id="results",
        batch_id=batch.id,
        result_path=str(tmp_path / "rows.parquet"),
        result_format="parquet",
        prices={"test/model": {"input": 1, "output": 1}},
        outlets=[asset],
    )
    manifest = operator.execute({"ti": RecordingTI(), "task": _Task([asset]), "outlet_events": events})
    extra = events[asset].extra
    assert extra["format"] == "parquet" and extra["cost"] == manifest["cost"] > 0
    assert extra["unpriced_models"] == []


def test_a_bad_price_in_the_connection_fails_at_once_before_anything_lands(emu, monkeypatch, tmp_path):
    extra = {"prices": {"test/model": {"input": "cheap", "output": 1}}}
    monkeypatch.setenv("AIRFLOW_CONN_TOGETHER_DEFAULT", connection_uri_env(emu.url, **extra))
    batch = finished_batch(tmp_path, n=1)
    target = tmp_path / "rows.parquet"
    with pytest.raises(AirflowFailException, match=r"connection extra 'prices'\['test/model'\]\['input'\]"):
        land(batch.id, target)
    assert not target.exists()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"result_format": "csv"}, r"result_format='csv'"),
        ({"prices": {"m": 1}}, r"prices\['m'\] must be"),
        ({"batch_discount": 2}, r"batch_discount must be a number from 0 to 1"),
    ],
)
def test_bad_options_are_refused_when_the_dag_is_built(options, words):
    with pytest.raises(ValueError, match=words):
        BatchResultsOperator(task_id="results", batch_id="b", result_path="/tmp/x.parquet", **options)


# ---- without pyarrow: a child process where it cannot be imported ------------------------------------

_WITHOUT_PYARROW = textwrap.dedent(
    """
    import json, sys
    from together_provider.operators.results import BatchResultsOperator
    from together_provider._compat import AirflowFailException

    def parquet_task():
        return BatchResultsOperator(
            task_id="t", batch_id="b-1", result_path="/tmp/never.parquet", result_format="parquet"
        )

    made = parquet_task()
    # From here on pyarrow cannot be imported: as on a worker installed without the extra.
    sys.modules["pyarrow"] = None
    out = {"imported_at_build": False}
    try:
        parquet_task()
    except ValueError as exc:
        out["build"] = str(exc)
    BatchResultsOperator(task_id="t", batch_id="b-1", result_path="/tmp/x.jsonl")
    try:
        made.execute({"ti": None})
    except AirflowFailException as exc:
        out["run"] = str(exc)
    print(json.dumps(out))
    """
)


def test_parquet_without_pyarrow_fails_at_once_naming_the_extra(emu, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "provider"), str(ROOT)]),
        "AIRFLOW_CONN_TOGETHER_DEFAULT": connection_uri_env(emu.url),
    }
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_PYARROW],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for when in ("build", "run"):
        assert "result_format='parquet' needs pyarrow 16.1 or later" in out[when], out
        assert "airflow-provider-together[parquet]" in out[when], out
    assert emu.requests_log() == [], "the task failed before asking Together anything"


# ---- memory: a large table, written in a child process ------------------------------------------------

_LARGE = textwrap.dedent(
    """
    import gc, json, resource, sys
    from together_provider.tasks import rows, storage

    count, text = int(sys.argv[1]), "word " * 400

    def made():
        for i in range(count):
            message = {"role": "assistant", "content": f"{i} {text}"}
            body = {"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 9, "completion_tokens": 400, "total_tokens": 409}}
            yield {"custom_id": f"r{i}", "status": "succeeded", "response": body, "error": None,
                   "usage": body["usage"], "model": "m", "round": 0, "batch_id": "b"}

    def land(path, landing):
        with storage.atomic_writer(path, field="result_path") as (sink, _):
            with rows.row_writer("parquet", sink) as write:
                for row in landing:
                    write(row)

    # Warm: pyarrow's import and one small table, so what follows is the writing alone.
    land(sys.argv[2] + ".warm", [next(made())])
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    land(sys.argv[2], made())
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"growth_kib": after - before}))
    """
)


def test_memory_stays_flat_while_a_large_table_is_written(tmp_path):
    """About 200 MB of text (50,000 answers of 2 KB, each twice: content and body): memory holds one row
    group, bounded by its 32 MB of text, not the table."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "provider"), str(ROOT)])}
    target = tmp_path / "large.parquet"
    done = subprocess.run(
        [sys.executable, "-c", _LARGE, "50000", str(target)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    growth = json.loads(done.stdout.strip().splitlines()[-1])["growth_kib"]
    meta = pq.ParquetFile(target).metadata
    assert meta.num_rows == 50_000 and meta.num_row_groups > 5
    # ru_maxrss is in KiB on Linux: a row group's text as Python strings, as Arrow arrays and as encoded
    # pages may be live at once; the table is six times that.
    assert growth < 160 * 1024, growth
