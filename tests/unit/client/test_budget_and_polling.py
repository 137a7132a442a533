import pytest

from together_provider.client.budget import RequestBudget
from together_provider.client.polling import next_poll_interval, predicted_seconds_left


def test_budget_allows_a_burst_then_paces():
    budget = RequestBudget(rate=10)
    waits = [budget.reserve(100.0) for _ in range(12)]
    assert waits[:10] == [0.0] * 10
    assert waits[10] == pytest.approx(0.1) and waits[11] == pytest.approx(0.2)


def test_budget_refills_with_time():
    budget = RequestBudget(rate=2, burst=1)
    assert budget.reserve(0.0) == 0.0
    assert budget.reserve(0.0) == pytest.approx(0.5)
    assert budget.reserve(5.0) == 0.0


def test_budget_needs_a_rate():
    with pytest.raises(ValueError, match="positive rate"):
        RequestBudget(rate=0)


@pytest.mark.parametrize(
    ("first", "now", "progress", "left"),
    [
        (None, 10, 50, None),
        ((0, 0), 10, None, None),
        ((0, 10), 10, 10, None),  # no movement: unknown, not infinite
        ((0, 0), 10, 50, 10.0),
        ((0, 20), 60, 80, 20.0),
    ],
)
def test_predicted_seconds_left(first, now, progress, left):
    assert predicted_seconds_left(first, now, progress) == left


@pytest.mark.parametrize(
    ("left", "deadline", "adaptive", "expected"),
    [
        (None, None, True, 60),  # nothing known yet: the author's interval
        (10, None, True, 15),  # about to finish: a quarter of the interval at least
        (400, None, True, 50),  # an eighth of the predicted time left
        (100, None, True, 15),  # an eighth is 12.5 s: the floor holds
        (100_000, None, True, 120),  # far away: at most two intervals
        (100_000, None, False, 60),
        (100_000, 30, True, 30),  # never past the deadline
    ],
)
def test_next_poll_interval(left, deadline, adaptive, expected):
    assert next_poll_interval(60, seconds_left=left, until_deadline=deadline, adaptive=adaptive) == expected
