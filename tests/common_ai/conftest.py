"""Fixtures for the tests of Together behind common.ai's @task.llm_batch. Every test module here skips
itself when apache-airflow-providers-common-ai is not installed (the main venv): the 3.3-ai leg of the
matrix installs it (``python3 tests/tooling/matrix/run.py 3.3-ai -- tests/common_ai``)."""

from __future__ import annotations

import json

import pytest

from ..helpers import stored_xcoms

COMMON_AI = "airflow.providers.common.ai.batch.base"
SKIP_REASON = "apache-airflow-providers-common-ai is not installed (the 3.3-ai matrix leg has it)"


@pytest.fixture
def fast_clock(emu):
    """Batches finish the moment they are created, so the first status check (made before any sleep)
    finds them done: common.ai's minimum poll_interval of 30 s is never slept."""
    emu.set_clock(validating_seconds=0, processing_seconds=0)
    return emu


@pytest.fixture
def results_dir(tmp_path, monkeypatch):
    """Where tests/dag_files/together_llm_batch.py lands results (read when the DAG file is parsed)."""
    monkeypatch.setenv("TOGETHER_LLM_BATCH_RESULTS", tmp_path.as_uri())
    return tmp_path


def rows_at(result_uri: str) -> list[dict]:
    """The landed rows, read back through ObjectStoragePath as a downstream task would, by index."""
    from together_provider._compat import ObjectStoragePath

    with ObjectStoragePath(result_uri).open("r") as handle:
        return sorted((json.loads(line) for line in handle), key=lambda row: row["index"])


def return_value(dag_run, task_id):
    """A task's return value as the metadata DB holds it, or None."""
    return stored_xcoms(dag_run.dag_id, dag_run.run_id, task_id).get((-1, "return_value"))


def state(ti) -> str:
    return str(getattr(ti.state, "value", ti.state))
