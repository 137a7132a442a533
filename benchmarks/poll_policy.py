"""Completion latency vs polls: simulated batches (no HTTP, a simulated clock), polled by a policy until
they finish. Reports the average delay between a batch finishing and the wait seeing it, and the polls
spent per batch, for a fixed interval and for the provider's adaptive interval.

A policy is any ``policy(state: PollState) -> seconds``; add one to ``policies()`` to compare it.
Batches: VALIDATING for 5 s to 2 min (progress 0), then IN_PROGRESS for 2 min to 12 h (log-uniform)
along one of five progress curves (linear, queued then linear, S-curve, fast start with a slow tail, and
10 % steps), then COMPLETED. The wait polls at submission and then whenever its policy says, like
``BatchStatusTrigger.run``; jitter is the trigger's own (x 0.9-1.1).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchmarks.common import median, percentile

if TYPE_CHECKING:
    from benchmarks.harness import Harness

BASE = 60.0
BATCHES = 2_000
CURVES = ("linear", "queued", "s-curve", "fast-start", "steps")
MAX_POLLS = 100_000  # a bound on every loop: no policy may poll a batch forever


@dataclass(frozen=True)
class Batch:
    validating: float
    processing: float
    curve: str
    queued: float  # for "queued": the share of processing time spent at 0 %

    @property
    def done_at(self) -> float:
        return self.validating + self.processing

    def progress(self, t: float) -> float:
        if t < self.validating:
            return 0.0
        x = min(1.0, (t - self.validating) / self.processing)
        if self.curve == "linear":
            share = x
        elif self.curve == "queued":
            share = 0.0 if x < self.queued else (x - self.queued) / (1 - self.queued)
        elif self.curve == "s-curve":
            low, high = 1 / (1 + math.exp(6)), 1 / (1 + math.exp(-6))
            share = (1 / (1 + math.exp(-12 * (x - 0.5))) - low) / (high - low)
        elif self.curve == "fast-start":
            share = math.sqrt(x)
        else:
            share = math.floor(x * 10) / 10
        return 100.0 * min(1.0, max(0.0, share))


@dataclass
class PollState:
    """What a wait knows at a poll: the trigger keeps the first progress it saw and the interval it was
    given; ``now`` counts from submission."""

    now: float
    base: float
    status: str
    progress: float
    first_seen: tuple[float, float] | None


Policy = Callable[[PollState], float]


def fixed(interval: float) -> Policy:
    def policy(state: PollState) -> float:
        return interval

    return policy


def provider_adaptive() -> Policy | None:
    """HOOK: the provider's adaptive interval, used exactly as BatchStatusTrigger.run uses it.
    Returns None when ``together_provider.client.polling`` is missing or its functions changed shape."""
    try:
        from together_provider.client.polling import next_poll_interval, predicted_seconds_left
    except ImportError:
        return None

    def policy(state: PollState) -> float:
        left = predicted_seconds_left(state.first_seen, state.now, state.progress)
        return next_poll_interval(state.base, seconds_left=left)

    try:
        policy(PollState(now=120.0, base=BASE, status="IN_PROGRESS", progress=10.0, first_seen=(60.0, 5.0)))
    except TypeError:
        return None
    return policy


def policies() -> dict[str, Policy]:
    found: dict[str, Policy] = {f"fixed {s:g} s": fixed(s) for s in (30.0, BASE, 120.0)}
    adaptive = provider_adaptive()
    if adaptive is not None:
        found[f"provider adaptive (base {BASE:g} s)"] = adaptive
    return found


def batches(count: int, seed: int = 6) -> list[Batch]:
    rng = random.Random(seed)
    made = []
    for index in range(count):
        made.append(
            Batch(
                validating=rng.uniform(5, 120),
                processing=math.exp(rng.uniform(math.log(120), math.log(12 * 3600))),
                curve=CURVES[index % len(CURVES)],
                queued=rng.uniform(0.2, 0.6),
            )
        )
    return made


def simulate(batch: Batch, policy: Policy, rng: random.Random, base: float = BASE) -> tuple[float, int]:
    """(seconds from completion until a poll saw it, polls spent) for one batch."""
    now, polls = 0.0, 0
    first_seen: tuple[float, float] | None = None
    while polls < MAX_POLLS:
        polls += 1
        if now >= batch.done_at:
            return now - batch.done_at, polls
        progress = batch.progress(now)
        if first_seen is None:
            first_seen = (now, progress)
        status = "VALIDATING" if now < batch.validating else "IN_PROGRESS"
        state = PollState(now=now, base=base, status=status, progress=progress, first_seen=first_seen)
        now += max(0.001, policy(state)) * rng.uniform(0.9, 1.1)
    raise RuntimeError(f"policy polled a {batch.processing:.0f} s batch {MAX_POLLS} times")


def evaluate(policy: Policy, simulated: list[Batch], seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    delays, polls = [], []
    by_curve: dict[str, dict[str, list[float]]] = {c: {"delay": [], "polls": []} for c in CURVES}
    for batch in simulated:
        delay, count = simulate(batch, policy, rng)
        delays.append(delay)
        polls.append(count)
        by_curve[batch.curve]["delay"].append(delay)
        by_curve[batch.curve]["polls"].append(count)
    return {
        "mean_delay_s": sum(delays) / len(delays),
        "median_delay_s": median(delays),
        "p95_delay_s": percentile(delays, 0.95),
        "mean_polls": sum(polls) / len(polls),
        "polls_per_batch_hour": sum(polls) / (sum(b.done_at for b in simulated) / 3600),
        "by_curve": {
            curve: {
                "mean_delay_s": sum(v["delay"]) / len(v["delay"]),
                "mean_polls": sum(v["polls"]) / len(v["polls"]),
            }
            for curve, v in by_curve.items()
            if v["delay"]
        },
    }


def suite(harness: Harness) -> None:
    simulated = batches(BATCHES if not harness.quick else 300)
    found = policies()
    results = {name: evaluate(policy, simulated) for name, policy in found.items()}
    if not any(name.startswith("provider adaptive") for name in found):
        harness.notes.append(
            "polling: together_provider.client.polling.next_poll_interval not found (or changed shape); "
            "only fixed intervals simulated. Hook: benchmarks/poll_policy.py provider_adaptive()."
        )
    reference = results[f"fixed {BASE:g} s"]
    for name, result in results.items():
        worst = max(result["by_curve"].items(), key=lambda item: item[1]["mean_delay_s"])
        harness.table.add(
            "6",
            f"{len(simulated):,} simulated batches, 2 min-12 h, 5 progress curves",
            name,
            f"delay mean {result['mean_delay_s']:.1f} s (p95 {result['p95_delay_s']:.0f} s); "
            f"worst curve {worst[0]} {worst[1]['mean_delay_s']:.0f} s; "
            f"{result['mean_polls']:.1f} polls/batch; "
            f"vs fixed {BASE:g} s: delay x{result['mean_delay_s'] / reference['mean_delay_s']:.2f}, "
            f"polls x{result['mean_polls'] / reference['mean_polls']:.2f}",
        )
    harness.results["poll_policy"] = {"batches": len(simulated), "base_s": BASE, "policies": results}
