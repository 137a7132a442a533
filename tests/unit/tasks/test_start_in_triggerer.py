"""BatchCompletionSensor(start_from_trigger=True): the arguments Airflow starts the wait in the triggerer
with, and what is refused at parse time. The run itself (the scheduler deferring the task, the triggerer
rendering the template) needs a scheduler and a triggerer: benchmarks/real_triggerer.py runs it on the e2e
stack, since dag.test() always starts a task on its in-process worker."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from airflow.providers.common.compat.sdk import DAG, Asset

from together_provider import _compat
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.tasks.start_in_triggerer import ENDING_TRIGGER_CLASS, TRIGGER_CLASS
from together_provider.triggers.batch import BatchStatusTrigger


def test_off_by_default():
    sensor = BatchCompletionSensor(task_id="s", batch_id="b")
    assert sensor.start_from_trigger is False
    assert sensor.start_trigger_args is None


def test_the_trigger_kwargs_rebuild_the_sensor_s_trigger():
    sensor = BatchCompletionSensor(
        task_id="s",
        batch_id="batch-1",
        together_conn_id="other",
        poll_interval=45,
        max_consecutive_failures=3,
        cancel_on_kill=True,
        adaptive_polling=False,
        timeout=3600 * 80,
        start_from_trigger=True,
    )
    args = sensor.start_trigger_args
    assert sensor.start_from_trigger is True
    assert args.trigger_cls == TRIGGER_CLASS
    assert args.next_method == "execute_complete"
    assert args.timeout == timedelta(hours=80)
    # What the triggerer builds from the kwargs serializes back to the same kwargs and class path,
    # so nothing the sensor asked for is lost on the way.
    trigger = BatchStatusTrigger(**args.trigger_kwargs)
    assert trigger.serialize() == (TRIGGER_CLASS, args.trigger_kwargs)
    assert args.trigger_kwargs == {
        "batch_id": "batch-1",
        "together_conn_id": "other",
        "poll_interval": 45.0,
        "deadline": None,
        "max_consecutive_failures": 3,
        "cancel_on_kill": True,
        "adaptive_polling": False,
    }


def test_a_template_is_left_for_the_triggerer_to_render():
    if not _compat.AIRFLOW_V_3_3_PLUS:
        pytest.skip("the triggerer renders templates from Airflow 3.3 on")
    template = "{{ dag_run.conf['batch_id'] }}"
    sensor = BatchCompletionSensor(task_id="s", batch_id=template, start_from_trigger=True)
    assert sensor.start_from_trigger is True
    assert sensor.start_trigger_args.trigger_kwargs["batch_id"] == template


def test_before_airflow_3_3_a_template_starts_on_a_worker_with_a_warning(monkeypatch):
    monkeypatch.setattr(_compat, "AIRFLOW_V_3_3_PLUS", False)
    with pytest.warns(UserWarning, match="templated batch_id needs Airflow 3.3"):
        sensor = BatchCompletionSensor(task_id="s", batch_id="{{ params.b }}", start_from_trigger=True)
    assert sensor.start_from_trigger is False
    # A literal id needs no rendering, so it still starts in the triggerer there.
    literal = BatchCompletionSensor(task_id="t", batch_id="batch-1", start_from_trigger=True)
    assert literal.start_from_trigger is True


def test_refused_without_deferrable():
    with pytest.raises(ValueError, match="start_from_trigger=True needs deferrable=True"):
        BatchCompletionSensor(task_id="s", batch_id="b", deferrable=False, start_from_trigger=True)


def test_refused_for_an_xcomarg_or_a_list():
    from together_provider._compat import BaseOperator

    with DAG(dag_id="start_in_triggerer_refusals", schedule=None, start_date=datetime(2026, 1, 1)):
        upstream = BaseOperator(task_id="upstream")
        with pytest.raises(ValueError, match="batch_id must be one batch id or a Jinja template"):
            BatchCompletionSensor(task_id="s", batch_id=upstream.output, start_from_trigger=True)
        with pytest.raises(ValueError, match="got list"):
            BatchCompletionSensor(task_id="t", batch_id=["a", "b"], start_from_trigger=True)


def test_a_mapped_sensor_is_accepted_and_left_to_start_on_a_worker():
    with DAG(dag_id="start_in_triggerer_mapped", schedule=None, start_date=datetime(2026, 1, 1)):
        mapped = BatchCompletionSensor.partial(task_id="m", start_from_trigger=True).expand(
            batch_id=["a", "b"]
        )
    # Without start_trigger_args Airflow's scheduler hands each map index to a worker as usual.
    assert getattr(mapped, "start_trigger_args", None) is None


def test_end_from_trigger_picks_the_ending_trigger():
    sensor = BatchCompletionSensor(
        task_id="s", batch_id="b", start_from_trigger=True, end_from_trigger=True, fail_on_request_errors=True
    )
    args = sensor.start_trigger_args
    assert args.trigger_cls == ENDING_TRIGGER_CLASS
    assert args.trigger_kwargs["fail_on_request_errors"] is True
    from together_provider.triggers.ending import BatchStatusEndingTrigger

    assert BatchStatusEndingTrigger(**args.trigger_kwargs).serialize() == (
        ENDING_TRIGGER_CLASS,
        args.trigger_kwargs,
    )


def test_end_from_trigger_refusals():
    with pytest.raises(ValueError, match="end_from_trigger=True needs start_from_trigger=True"):
        BatchCompletionSensor(task_id="s", batch_id="b", end_from_trigger=True)
    with pytest.raises(ValueError, match="end_from_trigger=True cannot be used with outlets"):
        BatchCompletionSensor(
            task_id="t",
            batch_id="b",
            start_from_trigger=True,
            end_from_trigger=True,
            outlets=[Asset("x://y")],
        )
