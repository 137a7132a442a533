"""Repairing a batch's results, without I/O: which failed requests a new batch can fix, the lines to send
again, and the rows a round leaves.

A request is sent again when it is **missing** (answered in neither file: an EXPIRED or CANCELLED batch,
or one Together dropped) or **errored with an error a retry can fix**, decided by :func:`repairable` from
the error file's per-request error: retryable codes (408, 409, 425, 429, 5xx), then other 4xx (never),
then code and type names, then the message's words; what nothing explains is never sent again (a round
costs tokens). The table, with an example per row that a test checks against this code, is in
``docs/repair.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from together_provider.client.results import ERRORED, MISSING, STATUSES, SUCCEEDED

_RETRY_CODES = frozenset({408, 409, 425, 429})
_RETRY_NAMES = (
    "rate_limit",
    "ratelimit",
    "too_many_requests",
    "timeout",
    "timed_out",
    "overloaded",
    "server_error",
    "internal_error",
    "service_unavailable",
    "unavailable",
    "capacity",
)
_NEVER_NAMES = (
    "invalid",
    "context_length",
    "authentication",
    "unauthorized",
    "permission",
    "forbidden",
    "not_found",
    "quota",
    "credit",
    "payment",
)
_NEVER_WORDS = (
    "context length",
    "context window",
    "maximum context",
    "too long",
    "too many tokens",
    "invalid",
    "not supported",
    "unsupported",
)
_RETRY_WORDS = (
    "rate limit",
    "overloaded",
    "timeout",
    "timed out",
    "try again",
    "temporarily",
    "capacity",
    "unavailable",
    "internal error",
    "server error",
)
# At most this many rounds after the first: each one is a new batch, with its own wait.
MAX_ROUNDS = 10


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _names(error: Mapping[str, Any]) -> list[str]:
    """The error's non-numeric code and type, with those of a body's nested ``error``, lower-cased."""
    found = []
    body = error.get("body")
    for where in (error, body if isinstance(body, Mapping) else {}):
        nested = where.get("error")
        for source in (where, nested if isinstance(nested, Mapping) else {}):
            for key in ("code", "type"):
                value = source.get(key)
                if isinstance(value, str) and _code(value) is None:
                    found.append(value.lower().replace(" ", "_").replace("-", "_"))
    return found


def repairable(error: Any) -> bool:
    """Whether a new batch can fix a request that errored with ``error`` (a row's ``error``)."""
    if not isinstance(error, Mapping):
        error = {"message": error}
    code = _code(error.get("code"))
    if code is not None and 400 <= code < 600:
        return code in _RETRY_CODES or code >= 500
    names = _names(error)
    if any(word in name for name in names for word in _NEVER_NAMES):
        return False
    if any(word in name for name in names for word in _RETRY_NAMES):
        return True
    message = str(error.get("message") or "").lower()
    if any(word in message for word in _NEVER_WORDS):
        return False
    return any(word in message for word in _RETRY_WORDS)


def needs_repair(row: Mapping[str, Any]) -> bool:
    """A row whose request a new round sends again: missing, or errored with a repairable error."""
    status = row.get("status")
    return status == MISSING or (status == ERRORED and repairable(row.get("error")))


def checked_rounds(value: Any) -> int:
    """``retry_failed_requests`` as given, or a ValueError naming the field and the range."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ROUNDS:
        raise ValueError(
            f"retry_failed_requests={value!r}: give a whole number of rounds from 0 (no repair, the "
            f"default) to {MAX_ROUNDS}"
        )
    return value


def custom_id_of(line: bytes) -> str | None:
    """An input line's custom id, or None for a blank or unreadable line (validation is the submit's)."""
    text = line.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    custom_id = obj.get("custom_id") if isinstance(obj, dict) else None
    return custom_id if isinstance(custom_id, str) else None


def select_requests(lines: Iterable[bytes], wanted: set[str]) -> Iterator[bytes]:
    """The input lines whose custom id is in ``wanted``, in input order, each ending in a newline. An id
    is taken out of ``wanted`` when its line is found, so each is sent once and what is left afterwards
    was found in no input."""
    for line in lines:
        custom_id = custom_id_of(line)
        if custom_id is None or custom_id not in wanted:
            continue
        wanted.discard(custom_id)
        yield line if line.endswith(b"\n") else line + b"\n"


def tagged(rows: Iterable[dict[str, Any]], round_number: int, batch_id: str) -> Iterator[dict[str, Any]]:
    """Rows naming the round and the batch they came from."""
    for row in rows:
        row["round"] = round_number
        row["batch_id"] = batch_id
        yield row


def round_summary(round_number: int, batch_ids: list[str], counts: Mapping[str, int]) -> dict[str, Any]:
    """One round's line of the manifest's ``rounds``: the batches, the requests sent, and how they ended."""
    return {
        "round": round_number,
        "batch_ids": list(batch_ids),
        "requests": sum(counts[status] for status in STATUSES),
        SUCCEEDED: counts[SUCCEEDED],
        ERRORED: counts[ERRORED],
        MISSING: counts[MISSING],
    }


def merged_rows(
    new_rows: Iterable[dict[str, Any]],
    old_rows: Iterable[dict[str, Any]],
    seen: Callable[[dict[str, Any]], Any],
) -> Iterator[dict[str, Any]]:
    """A round's rows merged into the rows landed before it (read back in any format), one row per custom
    id, streamed: first the round's answers (``seen`` is called with every row the round gave, its own
    tally), then each earlier row the round did not answer. A request the round left missing keeps its
    earlier row, which says more (its error) or as much; memory holds the set of ids the round answered.
    ``old_rows`` is read only once the round's rows are all out."""
    answered: set[str] = set()

    def fresh() -> Iterator[dict[str, Any]]:
        for row in new_rows:
            seen(row)
            if row["status"] != MISSING:
                answered.add(row["custom_id"])
                yield row

    def kept() -> Iterator[dict[str, Any]]:
        for row in old_rows:
            if row["custom_id"] not in answered:
                yield row

    yield from fresh()
    yield from kept()
