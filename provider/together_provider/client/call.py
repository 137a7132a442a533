"""One call's life, written once: send, read the answer, decide on a retry, wait, send again.

:func:`call_flow` is a generator that yields what to do next (send a request, or sleep) and is told
what happened; :func:`run_sync` and :func:`run_async` are the only two drivers, and they do nothing
but perform those steps. So the sync hook and the trigger's async polling share every decision.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from together_provider.client.errors import (
    IncompleteDownloadError,
    TogetherError,
    TransportError,
    error_from_response,
)
from together_provider.client.redact import redacted
from together_provider.client.requests import ApiRequest, RawResponse
from together_provider.client.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    request: ApiRequest[Any]
    attempt: int


@dataclass(frozen=True)
class Sleep:
    seconds: float
    reason: TogetherError


Step = Send | Sleep
Reply = RawResponse | TransportError | None


def read_response(request: ApiRequest[T], response: RawResponse) -> T:
    """The answer as a model, or the matching exception."""
    if not (200 <= response.status < 300 or response.status in request.accept):
        retry_after = parse_retry_after(response.headers) if response.status == 429 else None
        raise error_from_response(
            response.status,
            response.headers,
            response.body,
            retry_after=retry_after,
            operation=request.operation,
        )
    if request.download_path is not None:
        expected = response.header("Content-Length")
        written = response.bytes_written or 0
        if expected is not None and expected.isdigit() and int(expected) != written:
            raise IncompleteDownloadError(
                f"{request.operation}: received {written} of {expected} bytes announced by Content-Length"
            )
    return request.parse(response)


def call_flow(
    request: ApiRequest[T], policy: RetryPolicy, secrets: Sequence[str] = ()
) -> Generator[Step, Reply, T]:
    """One call, retries included. ``secrets`` (the API key) are removed from every answer before it is
    read, so no error or model built from it can carry them."""
    attempt = 0
    while True:
        attempt += 1
        reply = yield Send(request, attempt)
        try:
            if isinstance(reply, TransportError):
                raise reply
            if reply is None:
                raise TransportError(f"{request.operation}: the transport returned nothing")
            return read_response(request, redacted(reply, secrets))
        except TogetherError as error:
            delay = policy.delay_for(error, attempt, idempotent=request.idempotent)
            if delay is None:
                raise
            log.warning(
                "%s failed on attempt %d of %d (%s); retrying in %.1f s",
                request.operation,
                attempt,
                policy.max_attempts,
                type(error).__name__,
                delay,
            )
            yield Sleep(delay, error)


# A flow of calls (see cancel.py): yields the requests it needs, one after another, and is sent each answer
# (or has the call's error thrown in) until it returns its result.
Flow = Generator[ApiRequest[Any], Any, T]


def calls(flow: Flow[T], policy: RetryPolicy, secrets: Sequence[str] = ()) -> Generator[Step, Reply, T]:
    """A flow of calls as one flow of steps: each call runs through :func:`call_flow`, retries included,
    so the two drivers below run it unchanged."""
    request = next(flow)
    while True:
        try:
            answer = yield from call_flow(request, policy, secrets)
        except TogetherError as exc:
            step = functools.partial(flow.throw, exc)
        else:
            step = functools.partial(flow.send, answer)
        try:
            request = step()
        except StopIteration as done:
            return done.value


def _steps(
    request: ApiRequest[T] | Flow[T], policy: RetryPolicy, secrets: Sequence[str]
) -> Generator[Step, Reply, T]:
    if isinstance(request, ApiRequest):
        return call_flow(request, policy, secrets)
    return calls(request, policy, secrets)


def run_sync(
    request: ApiRequest[T] | Flow[T],
    policy: RetryPolicy,
    send: Callable[[ApiRequest[Any]], RawResponse],
    sleep: Callable[[float], None] = time.sleep,
    *,
    secrets: Sequence[str] = (),
) -> T:
    flow = _steps(request, policy, secrets)
    step = next(flow)
    while True:
        reply: Reply = None
        if isinstance(step, Sleep):
            sleep(step.seconds)
        else:
            try:
                reply = send(step.request)
            except TransportError as exc:
                reply = exc
        try:
            step = flow.send(reply)
        except StopIteration as done:
            return done.value


async def run_async(
    request: ApiRequest[T] | Flow[T],
    policy: RetryPolicy,
    send: Callable[[ApiRequest[Any]], Awaitable[RawResponse]],
    sleep: Callable[[float], Awaitable[None]],
    *,
    secrets: Sequence[str] = (),
) -> T:
    flow = _steps(request, policy, secrets)
    step = next(flow)
    while True:
        reply: Reply = None
        if isinstance(step, Sleep):
            await sleep(step.seconds)
        else:
            try:
                reply = await send(step.request)
            except TransportError as exc:
                reply = exc
        try:
            step = flow.send(reply)
        except StopIteration as done:
            return done.value
