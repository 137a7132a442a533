"""Arguments refused or defaulted when a DAG is parsed, before anything runs."""

import pytest

from together_provider.links import batch_url
from together_provider.operators.batch import SubmitBatchOperator
from together_provider.sensors.batch import BatchCompletionSensor
from together_provider.tasks.waiting import MIN_DEFAULT_TIMEOUT


def test_sensor_default_timeout_is_never_under_72_hours():
    sensor = BatchCompletionSensor(task_id="s", batch_id="b")
    assert sensor.timeout >= MIN_DEFAULT_TIMEOUT == 72 * 3600
    assert BatchCompletionSensor(task_id="s2", batch_id="b", timeout=30).timeout == 30


@pytest.mark.parametrize("interval", [0, -1])
def test_poll_interval_must_be_positive(interval):
    with pytest.raises(ValueError, match="poll_interval must be greater than 0"):
        BatchCompletionSensor(task_id="s", batch_id="b", poll_interval=interval)
    with pytest.raises(ValueError, match="poll_interval must be greater than 0"):
        SubmitBatchOperator(task_id="t", input_file_id="f", poll_interval=interval)


@pytest.mark.parametrize("kwargs", [{}, {"input_file_path": "a.jsonl", "input_file_id": "f"}])
def test_submit_needs_exactly_one_input(kwargs):
    with pytest.raises(ValueError, match="exactly one of input_file_path"):
        SubmitBatchOperator(task_id="t", **kwargs)


def test_templated_fields():
    assert "batch_id" in BatchCompletionSensor.template_fields
    assert {"input_file_path", "input_file_id"} <= set(SubmitBatchOperator.template_fields)


def test_console_link_pattern():
    assert (
        batch_url("https://api.together.ai/batches/{batch_id}", "b1") == "https://api.together.ai/batches/b1"
    )
    assert batch_url("https://x/{missing}", "b1") == ""


@pytest.mark.parametrize(
    ("setting", "explicit", "expected"),
    [
        (None, None, True),  # Airflow's built-in default (False) is nobody's choice: defer
        ("False", None, False),
        ("True", None, True),
        ("False", True, True),  # an explicit argument wins
        ("True", False, False),
    ],
)
def test_deferrable_follows_default_deferrable_where_the_deployment_sets_it(
    setting, explicit, expected, monkeypatch
):
    if setting is None:
        monkeypatch.delenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", setting)
    assert BatchCompletionSensor(task_id="s", batch_id="b", deferrable=explicit).deferrable is expected
    submit = SubmitBatchOperator(
        task_id="t", input_file_id="f", wait_for_completion=True, deferrable=explicit
    )
    assert submit.deferrable is expected


@pytest.mark.parametrize("method", ["run", "run_and_check", "run_with_advanced_retry"])
def test_raw_http_of_the_base_hook_is_refused_clearly(method):
    from together_provider.hooks.together import TogetherHook

    with pytest.raises(
        NotImplementedError, match=rf"TogetherHook.{method}\(\) is not supported: .*Use get_batch"
    ):
        getattr(TogetherHook(), method)("/v1/batches")
