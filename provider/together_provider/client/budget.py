"""A request budget per connection: N waits in one triggerer never push the account past its rate limit.

A token bucket, as data: it says how long the next request must wait; the caller does the waiting.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RequestBudget:
    """At most ``rate`` requests per second on average, in bursts of at most ``burst``."""

    rate: float
    burst: float = 0.0
    _tokens: float | None = field(default=None, repr=False)
    _stamp: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"a request budget needs a positive rate, got {self.rate!r}")
        self.burst = self.burst or max(1.0, self.rate)

    def reserve(self, now: float) -> float:
        """Take one request's token; return the seconds to wait before sending it (0 when free)."""
        if self._tokens is None:
            self._tokens, self._stamp = self.burst, now
        # Tokens go negative: a debt that later reservations queue behind.
        tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate) - 1.0
        self._tokens, self._stamp = tokens, now
        return 0.0 if tokens >= 0 else -tokens / self.rate
