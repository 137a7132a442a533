"""What a waiting task tells the person reading its log: that it defers and how often it will poll, the
files a finished batch left, a final status without a raw ``None``, and how to create a missing
connection."""

from __future__ import annotations

import pytest

from together_provider._compat import AirflowFailException, TaskDeferred
from together_provider.client.wait import batch_event
from together_provider.hooks.together import TogetherHook
from together_provider.operators.batch import GetBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor

from ..helpers import RecordingTI, wait_terminal, write_requests


@pytest.fixture
def hook(together_conn):
    return TogetherHook()


def submitted(hook, path, model="test/model"):
    return hook.create_batch(hook.upload_file(write_requests(path, n=2, model=model)).id).id


def test_the_sensor_says_it_defers_and_how_often_it_polls(hook, tmp_path, task_logs):
    batch_id = submitted(hook, tmp_path / "w.jsonl", model="emulator/never-finish")
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch_id, poll_interval=40, timeout=3600)
    with pytest.raises(TaskDeferred):
        sensor.execute({"ti": RecordingTI()})
    assert (
        f"Deferring: the triggerer polls Together batch {batch_id} every 40 s (adaptive: 10-80 s, "
        "sooner near the end), for at most 3600 s; no worker slot is held meanwhile"
    ) in task_logs()
    hook.cancel_batch(batch_id)


def test_after_resuming_a_line_names_the_files(hook, tmp_path, task_logs):
    batch = wait_terminal(hook, submitted(hook, tmp_path / "c.jsonl"))
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch.id)
    sensor.execute_complete({"ti": RecordingTI()}, batch_event(batch))
    assert (
        f"Together batch {batch.id} ended COMPLETED: output file {batch.output_file_id}, no error file"
        in task_logs()
    )


def test_expired_names_no_raw_none(hook, tmp_path):
    batch = wait_terminal(hook, submitted(hook, tmp_path / "e.jsonl", model="emulator/batch-expire"))
    assert batch.error_file_id is None, "the case the message used to end in 'error file None'"
    sensor = BatchCompletionSensor(task_id="wait", batch_id=batch.id)
    with pytest.raises(AirflowFailException) as failed:
        sensor.execute_complete({"ti": RecordingTI()}, batch_event(batch))
    message = str(failed.value)
    assert message.startswith(f"Together batch {batch.id} ended EXPIRED: ")
    assert "None" not in message and message.endswith(", no error file)")


def test_a_missing_connection_says_how_to_create_it():
    with pytest.raises(AirflowFailException) as failed:
        GetBatchOperator(task_id="g", batch_id="b-1", together_conn_id="together_nosuch").execute(
            {"ti": RecordingTI()}
        )
    message = str(failed.value)
    assert message.startswith("connection 'together_nosuch': ")
    assert "airflow connections add together_nosuch --conn-type together" in message
    assert "AIRFLOW_CONN_TOGETHER_NOSUCH" in message
