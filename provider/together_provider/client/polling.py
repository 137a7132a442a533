"""When to poll next: often when a batch is about to finish, rarely when it is far from it.

A batch's progress rate predicts its completion. Polling at a fraction of the predicted time left
finds the end sooner than a fixed interval while spending fewer polls on long batches. Pure
computation: the trigger keeps the history and does the sleeping.
"""

from __future__ import annotations

# The adaptive interval stays within these multiples of the author's poll_interval. The ceiling is
# low because a prediction can be far off: progress that moves in steps (or stalls) holds still while
# the batch works, so the rate looks slow and the time left long exactly when the end is near.
MIN_FACTOR = 0.25
MAX_FACTOR = 2.0
# Poll again after this fraction of the predicted time left: small, so a batch that finishes well
# before its prediction is still seen soon. Chosen with benchmarks/poll_policy.py on simulated batches:
# it sees a finished batch sooner than a fixed poll_interval does, with fewer polls, where MAX_FACTOR 4
# with ETA_FRACTION 0.5 saw many much later (the figures: benchmarks/README.md, item 6).
ETA_FRACTION = 0.125


def predicted_seconds_left(
    first: tuple[float, float] | None, now: float, progress: float | None
) -> float | None:
    """Time left at the progress rate seen since ``first`` ((time, progress)), or None when unknown."""
    if first is None or progress is None:
        return None
    started, start_progress = first
    elapsed = now - started
    if elapsed <= 0 or progress <= start_progress:
        return None
    rate = (progress - start_progress) / elapsed
    return max(0.0, (100.0 - progress) / rate)


def next_poll_interval(
    base: float,
    *,
    seconds_left: float | None,
    until_deadline: float | None = None,
    adaptive: bool = True,
) -> float:
    """Seconds until the next poll, before jitter.

    :param base: the author's ``poll_interval``.
    :param seconds_left: the predicted time to completion, None when unknown (no progress yet).
    :param until_deadline: seconds until the wait's deadline; never sleep past it.
    """
    wait = base
    if adaptive and seconds_left is not None:
        wait = min(max(seconds_left * ETA_FRACTION, base * MIN_FACTOR), base * MAX_FACTOR)
    if until_deadline is not None:
        wait = min(wait, max(0.0, until_deadline))
    return wait


def checked_poll_interval(value: object) -> float:
    """``poll_interval`` in seconds; every wait (sensor, submit, trigger) checks it here."""
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        raise ValueError(f"poll_interval must be greater than 0 seconds, got {value!r}")
    return seconds
