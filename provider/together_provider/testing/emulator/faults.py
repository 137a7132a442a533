"""Scripted and random fault injection.

A rule matches on method and a path regex, lets ``after`` matching requests through, then fires on the next
``times`` ones (``times: null`` fires forever) and is spent. Random faults fire on a share of the requests
with a seeded generator so a failing run can be replayed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("status", "drop", "slow", "malformed", "html", "truncate")
PHASES = ("before", "after")
DEFAULT_RANDOM_STATUSES = (429, 500, 502, 503)
DEFAULT_RANDOM_PATH = r"^/v1/"


@dataclass
class FaultRule:
    kind: str
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    after: int = 0
    status: int | None = None
    retry_after: str | None = None
    retry_after_http_date: float | None = None
    retry_after_ms: str | None = None
    should_retry: bool | None = None
    message: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 5.0
    truncate_at: int | None = None
    # "after" runs the real handler first (side effects happen), then spoils the answer.
    phase: str = "before"
    seen: int = 0
    fired: int = 0
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: dict) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("each rule must be a JSON object")
        known = {name for name in cls.__dataclass_fields__ if not name.startswith("_")} - {"seen", "fired"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown rule fields: {', '.join(sorted(unknown))}")
        rule = cls(**data)
        if rule.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}")
        if rule.phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(PHASES)}")
        if rule.times is not None and rule.times < 0:
            raise ValueError("times must be >= 0 or null (forever)")
        if rule.retry_after is not None:
            rule.retry_after = str(rule.retry_after)
        if rule.retry_after_ms is not None:
            rule.retry_after_ms = str(rule.retry_after_ms)
        if rule.method in ("*", ""):
            rule.method = None
        if rule.path:
            try:
                rule._regex = re.compile(rule.path)
            except re.error as exc:
                raise ValueError(f"bad path regex {rule.path!r}: {exc}") from exc
        return rule

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self._regex is None or self._regex.search(path) is not None

    @property
    def spent(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if not name.startswith("_")}
        data["remaining"] = None if self.times is None else max(self.times - self.fired, 0)
        return data


@dataclass
class RandomFaults:
    rate: float
    kinds: tuple[str, ...] = ("status",)
    statuses: tuple[int, ...] = DEFAULT_RANDOM_STATUSES
    seed: int | None = None
    path: str = DEFAULT_RANDOM_PATH
    method: str | None = None
    delay: float = 2.0
    retry_after: str | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _regex: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: dict) -> RandomFaults:
        rate = float(data.get("rate", 0.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        kinds = tuple(data.get("kinds") or ("status",))
        bad = [kind for kind in kinds if kind not in KINDS]
        if bad:
            raise ValueError(f"unknown fault kinds: {', '.join(bad)}")
        statuses = tuple(int(s) for s in data.get("statuses") or DEFAULT_RANDOM_STATUSES)
        retry_after = data.get("retry_after")
        faults = cls(
            rate=rate,
            kinds=kinds,
            statuses=statuses,
            seed=data.get("seed"),
            path=data.get("random_path") or DEFAULT_RANDOM_PATH,
            method=data.get("random_method"),
            delay=float(data.get("delay", 2.0)),
            retry_after=None if retry_after is None else str(retry_after),
        )
        faults._rng = random.Random(faults.seed)
        faults._regex = re.compile(faults.path)
        return faults

    def draw(self, method: str, path: str) -> FaultRule | None:
        if self.method is not None and self.method.upper() != method.upper():
            return None
        if self._regex is not None and not self._regex.search(path):
            return None
        if self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(self.kinds)
        status = self._rng.choice(self.statuses)
        if kind == "html" and status < 500:
            status = 502  # proxies put up HTML pages for gateway errors, not for 429s
        return FaultRule(
            kind=kind,
            status=status,
            delay=self.delay,
            retry_after=self.retry_after,
            fired=1,
        )

    def to_dict(self) -> dict:
        return {
            "rate": self.rate,
            "kinds": list(self.kinds),
            "statuses": list(self.statuses),
            "seed": self.seed,
            "random_path": self.path,
            "random_method": self.method,
            "delay": self.delay,
            "retry_after": self.retry_after,
        }


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)
    random: RandomFaults | None = None

    @classmethod
    def from_dict(cls, data: dict) -> FaultPlan:
        if not isinstance(data, dict):
            raise ValueError("the fault script must be a JSON object")
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            raise ValueError("rules must be a list")
        plan = cls(rules=[FaultRule.from_dict(rule) for rule in rules])
        if data.get("rate") is not None:
            plan.random = RandomFaults.from_dict(data)
        return plan

    def pick(self, method: str, path: str) -> FaultRule | None:
        """The fault for this request, if any; every matching rule counts the request toward its ``after``."""
        chosen = None
        for rule in self.rules:
            if not rule.matches(method, path):
                continue
            rule.seen += 1
            if chosen is None and rule.seen > rule.after and not rule.spent:
                rule.fired += 1
                chosen = rule
        if chosen is None and self.random is not None:
            chosen = self.random.draw(method, path)
        return chosen

    def to_dict(self) -> dict:
        return {
            "rules": [rule.to_dict() for rule in self.rules],
            "random": self.random.to_dict() if self.random else None,
        }
