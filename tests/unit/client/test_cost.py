"""The estimated cost (client/cost.py): tokens per model, prices per million tokens, the batch discount,
models without a price, and every bad price named."""

from __future__ import annotations

import re

import pytest

from together_provider.client.cost import (
    DEFAULT_BATCH_DISCOUNT,
    Pricing,
    checked_batch_discount,
    checked_prices,
    estimate,
)
from together_provider.client.results import Tally


def answered(model, prompt, completion, status="succeeded"):
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return {"custom_id": "x", "status": status, "usage": usage, "model": model}


def tally_of(*rows):
    tally = Tally()
    for row in rows:
        tally.add(row)
    return tally


def test_usage_per_model_counts_answered_requests_and_their_tokens():
    tally = tally_of(
        answered("b/model", 10, 20),
        answered("a/model", 1_000, 2_000),
        answered("b/model", 5, 5),
        {"custom_id": "t", "status": "succeeded", "usage": None, "model": "audio/model"},
        {"custom_id": "e", "status": "errored", "usage": None, "model": None},
        {"custom_id": "m", "status": "missing", "usage": None, "model": "b/model"},
        {"custom_id": "u", "status": "succeeded", "usage": None, "model": None},
    )
    assert tally.usage_by_model == {
        "a/model": {"prompt_tokens": 1_000, "completion_tokens": 2_000, "total_tokens": 3_000, "requests": 1},
        "audio/model": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "requests": 1},
        "b/model": {"prompt_tokens": 15, "completion_tokens": 25, "total_tokens": 40, "requests": 2},
        "unknown": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "requests": 1},
    }
    assert list(tally.usage_by_model) == sorted(tally.usage_by_model)


def test_the_cost_is_tokens_times_the_price_per_million_less_the_discount():
    pricing = Pricing(prices={"m": (0.88, 2.0)}, batch_discount=0.5)
    usage = tally_of(answered("m", 1_000_000, 500_000), answered("m", 1_000_000, 500_000)).usage_by_model
    got = estimate(usage, pricing)
    # listed: 2 M input x 0.88 + 1 M output x 2.0 = 3.76; half of it
    assert got["cost"] == pytest.approx(1.88)
    assert got["usage_by_model"]["m"]["cost"] == pytest.approx(1.88)
    assert got["unpriced_models"] == [] and got["batch_discount"] == 0.5
    assert estimate(usage, Pricing(prices={"m": (0.88, 2.0)}, batch_discount=0))["cost"] == pytest.approx(
        3.76
    )
    assert estimate(usage, Pricing(prices={"m": (0.88, 2.0)}, batch_discount=1))["cost"] == 0


def test_a_model_without_a_price_has_no_cost_and_leaves_the_total_unknown():
    usage = tally_of(answered("priced", 1_000_000, 0), answered("other", 10, 10)).usage_by_model
    got = estimate(usage, Pricing(prices={"priced": (1.0, 1.0)}))
    assert got["usage_by_model"]["priced"]["cost"] == pytest.approx(0.5)
    assert got["usage_by_model"]["other"]["cost"] is None
    assert got["unpriced_models"] == ["other"] and got["cost"] is None
    nothing = estimate(usage, Pricing())
    assert nothing["unpriced_models"] == ["other", "priced"] and nothing["cost"] is None


def test_nothing_answered_cost_nothing():
    assert estimate({}, Pricing()) == {
        "usage_by_model": {},
        "cost": 0.0,
        "unpriced_models": [],
        "batch_discount": DEFAULT_BATCH_DISCOUNT,
    }


def test_the_default_discount_is_half_and_the_connection_s_extras_are_read():
    assert DEFAULT_BATCH_DISCOUNT == 0.5
    assert Pricing.from_extra({}) == Pricing(prices={}, batch_discount=0.5)
    pricing = Pricing.from_extra({"prices": '{"m": {"input": 1, "output": 2}}', "batch_discount": 0.25})
    assert pricing == Pricing(prices={"m": (1.0, 2.0)}, batch_discount=0.25)


def test_the_operator_s_prices_win_model_by_model():
    connection = Pricing(prices={"a": (1.0, 1.0), "b": (2.0, 2.0)}, batch_discount=0.5)
    mine = connection.overridden(prices={"b": (3.0, 3.0), "c": (4.0, 4.0)}, batch_discount=None)
    assert mine.prices == {"a": (1.0, 1.0), "b": (3.0, 3.0), "c": (4.0, 4.0)}
    assert mine.batch_discount == 0.5
    assert connection.overridden(prices=None, batch_discount=0).batch_discount == 0


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([1, 2], "must be an object of model names"),
        ("{not json", "is not valid JSON"),
        ({"m": 0.88}, r"\['m'\] must be \{'input': price, 'output': price\}"),
        ({"m": {"input": 1}}, r"\['m'\] must be"),
        ({"m": {"input": -1, "output": 1}}, r"\['m'\]\['input'\] must be a number of at least 0"),
        ({"m": {"input": 1, "output": "2"}}, r"\['output'\] must be a number"),
        ({"m": {"input": True, "output": 1}}, "must be a number"),
        ({"": {"input": 1, "output": 1}}, "a model name must be a non-empty string"),
    ],
)
def test_a_bad_price_is_named(value, words):
    with pytest.raises(ValueError, match=r"^prices") as raised:
        checked_prices(value, "prices")
    assert re.search(words, str(raised.value)), str(raised.value)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "half", True])
def test_a_bad_discount_is_named(bad):
    with pytest.raises(ValueError, match=r"batch_discount must be a number from 0 to 1"):
        checked_batch_discount(bad, "batch_discount")
    with pytest.raises(ValueError, match=r"connection extra 'batch_discount'"):
        Pricing.from_extra({"batch_discount": bad})
    with pytest.raises(ValueError, match=r"connection extra 'prices'"):
        Pricing.from_extra({"prices": [bad]})
