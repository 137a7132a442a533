"""What a batch cost, estimated, without I/O: tokens per model times the prices the user gave.

Prices are per million tokens, input (prompt) and output (completion) apart, per model, from the
connection's extra ``prices`` or the operator's ``prices`` (which wins, model by model). No price list is
built in: Together's prices change, and a stale list would report a wrong cost with confidence.

Together bills the Batch API below its serverless prices ("up to 50% off serverless rates", its batch
inference overview says): ``batch_discount`` is the share taken off the prices given (default 0.5; 0 when
the prices given are already what a batch pays). A model that answered but has no price gets a ``cost``
of None and is listed in ``unpriced_models``; the total is then None too, since a sum that leaves a model
out is not the batch's cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_BATCH_DISCOUNT = 0.5
TOKENS_PER_PRICE = 1_000_000
# Rounded where a float's noise starts (sums of products of decimal prices): a request can cost a
# hundred-thousandth of a dollar, so the digits before that must stay.
_DIGITS = 12


def _price(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0 or value != value:
        raise ValueError(
            f"{where} must be a number of at least 0 (a price per million tokens), got {value!r}"
        )
    return float(value)


def checked_prices(value: Any, field_name: str) -> dict[str, tuple[float, float]]:
    """``{model: {"input": price, "output": price}}`` as ``{model: (input, output)}``, or a ValueError
    naming the field, the model and what is wrong. A JSON text of that object is read too (an extra typed
    into the Extra box as a string)."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(
                f"{field_name} is not valid JSON: give an object such as "
                f'{{"meta-llama/Llama-3.3-70B-Instruct-Turbo": {{"input": 0.88, "output": 0.88}}}}'
            ) from None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{field_name} must be an object of model names to {{'input': price, 'output': price}} (per "
            f"million tokens), got {type(value).__name__}"
        )
    prices = {}
    for model, price in value.items():
        where = f"{field_name}[{model!r}]"
        if not isinstance(model, str) or not model:
            raise ValueError(f"{field_name}: a model name must be a non-empty string, got {model!r}")
        if not isinstance(price, Mapping) or set(price) != {"input", "output"}:
            raise ValueError(
                f"{where} must be {{'input': price, 'output': price}} (per million tokens), got {price!r}"
            )
        prices[model] = (
            _price(price["input"], f"{where}['input']"),
            _price(price["output"], f"{where}['output']"),
        )
    return prices


def checked_batch_discount(value: Any, field_name: str) -> float | None:
    """The share taken off the prices (0 to 1), None when not given, or a ValueError naming the field."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(
            f"{field_name} must be a number from 0 to 1 (the share the Batch API takes off the prices given: "
            f"0.5 is half price, 0 when the prices are already batch prices), got {value!r}"
        )
    return float(value)


@dataclass(frozen=True)
class Pricing:
    """Prices per million tokens per model, ``(input, output)``, and the batch discount."""

    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    batch_discount: float = DEFAULT_BATCH_DISCOUNT

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> Pricing:
        """The connection's extras ``prices`` and ``batch_discount``; a bad one is a ValueError naming it."""
        discount = checked_batch_discount(extra.get("batch_discount"), "connection extra 'batch_discount'")
        return cls(
            prices=checked_prices(extra.get("prices"), "connection extra 'prices'"),
            batch_discount=DEFAULT_BATCH_DISCOUNT if discount is None else discount,
        )

    def overridden(
        self, *, prices: Mapping[str, tuple[float, float]] | None, batch_discount: float | None
    ) -> Pricing:
        """These prices with the operator's: its models' prices win, the others stay."""
        return replace(
            self,
            prices={**self.prices, **(prices or {})},
            batch_discount=self.batch_discount if batch_discount is None else batch_discount,
        )

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        price = self.prices.get(model)
        if price is None:
            return None
        listed = (prompt_tokens * price[0] + completion_tokens * price[1]) / TOKENS_PER_PRICE
        return round(listed * (1 - self.batch_discount), _DIGITS)


def estimate(usage_by_model: Mapping[str, Mapping[str, int]], pricing: Pricing) -> dict[str, Any]:
    """The manifest's cost fields: ``usage_by_model`` (each model's line gains its ``cost``), ``cost``
    (the total; None when a model that answered has no price), ``unpriced_models`` and the
    ``batch_discount`` applied."""
    lines: dict[str, dict[str, Any]] = {}
    unpriced = []
    total = 0.0
    for model, usage in usage_by_model.items():
        cost = pricing.cost(model, int(usage["prompt_tokens"]), int(usage["completion_tokens"]))
        lines[model] = {**usage, "cost": cost}
        if cost is None:
            unpriced.append(model)
        else:
            total += cost
    return {
        "usage_by_model": lines,
        "cost": None if unpriced else round(total, _DIGITS),
        "unpriced_models": sorted(unpriced),
        "batch_discount": pricing.batch_discount,
    }
