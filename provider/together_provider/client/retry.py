"""The one retry policy, shared by the sync and async transports.

It answers two questions for a failed attempt: retry at all, and after how long. It never sleeps
itself; the transports do, with ``time.sleep`` or ``asyncio.sleep``.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

from together_provider.client.errors import (
    PERMANENT_STATUSES,
    APIStatusError,
    InvalidResponseError,
    RateLimitError,
    TogetherError,
    TransportError,
    is_transient,
)

# A server hint above this is treated as "give up now" rather than as a wait: blocking a worker for
# minutes on one call is worse than failing and letting Airflow's own retries take over.
MAX_HONOURED_RETRY_AFTER = 60.0


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait per ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), else None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        value = float(raw)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def should_retry_header(headers: Mapping[str, str]) -> bool | None:
    value = {k.lower(): v for k, v in headers.items()}.get("x-should-retry", "").strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter and a cap; ``max_attempts`` counts the first try.

    :param max_attempts: total attempts per call, the first included (1 disables retries).
    :param base_delay: wait before the second attempt, doubled after each failure.
    :param max_delay: cap on a computed wait (a server's Retry-After may ask for more, up to 60 s).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must not be negative")

    def is_retryable(self, error: TogetherError, *, idempotent: bool = True) -> bool:
        """Whether ``error`` is worth another attempt, ignoring how many were made."""
        if isinstance(error, TransportError):
            # A request that may have reached the server is only safe to repeat when repeating it
            # cannot do anything twice (a create would make a second batch).
            return idempotent or not error.request_sent
        if isinstance(error, APIStatusError):
            hint = should_retry_header(error.headers)
            if error.status_code in PERMANENT_STATUSES:
                return False
            if not idempotent:
                # The server saw the request. Only a 429 proves it did nothing with it.
                return isinstance(error, RateLimitError) and hint is not False
            if hint is not None:
                return hint
            return is_transient(error)
        if isinstance(error, InvalidResponseError):
            # A garbled body of a read is transient; of a create it may hide a new batch.
            return idempotent and is_transient(error)
        return False

    def backoff(self, attempt: int) -> float:
        """Wait after failed attempt number ``attempt`` (1-based), before server hints."""
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return delay * (1 - self.jitter * random.random())

    def delay_for(self, error: TogetherError, attempt: int, *, idempotent: bool = True) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up and raise ``error``."""
        if attempt >= self.max_attempts or not self.is_retryable(error, idempotent=idempotent):
            return None
        hinted = None
        if isinstance(error, APIStatusError):
            hinted = parse_retry_after(error.headers)
        if hinted is not None:
            if hinted > MAX_HONOURED_RETRY_AFTER:
                return None
            return hinted
        return self.backoff(attempt)
