"""A finished batch's results as data, without I/O: one record per request, their tally, the manifest.

Together answers each request in the output file (``{"custom_id", "response": {"status_code", "body"}}``)
or the error file (``{"custom_id", "error": {"message", "code"}}``), in any order, and does not promise
that every request comes back. :func:`merge` reads both, then the batch's input file, and gives every
request exactly one record: ``succeeded``, ``errored`` or ``missing``. Only the set of custom ids seen is
kept, so memory stays bounded on a 50,000-request batch; the caller streams the lines in.

A record is a JSON-safe dict::

    {"custom_id", "status", "response": <body> | None, "error": <error> | None,
     "usage": {"prompt_tokens", "completion_tokens", "total_tokens"} | None, "model": str | None}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from together_provider.client.errors import InvalidResponseError

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
# A manifest across several batches: the lists ``batch_ids``, ``statuses``, ``output_file_ids`` and
# ``error_file_ids`` are added, and ``batch_id``, ``output_file_id`` and ``error_file_id``, which name one
# batch, are None (a field that was always a batch id now may not be: hence a new version).
SCHEMA_VERSION_LIST = 2
# Which ending of a part says most about the merged set: a failure outranks an expiry, which outranks
# a cancel (someone chose it), which outranks success.
_SEVERITY = {"COMPLETED": 0, "CANCELLED": 1, "EXPIRED": 2, "FAILED": 3}
SUCCEEDED = "succeeded"
ERRORED = "errored"
MISSING = "missing"
STATUSES = (SUCCEEDED, ERRORED, MISSING)
USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens")
# The model of an answer that names none, in usage per model.
UNKNOWN_MODEL = "unknown"

Lines = Iterable[bytes | str]


def _broken(file_id: str, lineno: int, reason: str) -> InvalidResponseError:
    return InvalidResponseError(f"Together's file {file_id}, line {lineno}: {reason}")


def _parse_line(raw: bytes | str, file_id: str, lineno: int) -> dict[str, Any] | None:
    """The line as a JSON object with a custom id, or None for a blank line."""
    text = raw.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        raise _broken(file_id, lineno, "not valid JSON") from None
    if not isinstance(obj, dict):
        raise _broken(file_id, lineno, f"expected a JSON object, got {type(obj).__name__}")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise _broken(file_id, lineno, "custom_id is missing or not a non-empty string")
    return obj


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def usage_of(body: Any) -> dict[str, int] | None:
    """The body's token usage, or None when it reports none (audio answers carry only text)."""
    usage = body.get("usage") if isinstance(body, Mapping) else None
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    total = _int(usage.get("total_tokens"))
    if prompt is None and completion is None and total is None:
        return None
    if total is None:
        total = (prompt or 0) + (completion or 0)
    return {"prompt_tokens": prompt or 0, "completion_tokens": completion or 0, "total_tokens": total}


def _error_message(body: Any) -> str:
    """The text of an error body in any of the shapes Together and proxies send."""
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str) and inner:
            return inner
        if body.get("message"):
            return str(body["message"])
    if isinstance(body, str) and body:
        return body
    return json.dumps(body)[:500]


def record(
    custom_id: str,
    status: str,
    *,
    response: Any = None,
    error: Any = None,
    usage: dict[str, int] | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "status": status,
        "response": response,
        "error": error,
        "usage": usage,
        "model": model,
    }


def result_record(raw: bytes | str, *, file_id: str, lineno: int) -> dict[str, Any] | None:
    """One line of an output or error file as a record (None for a blank line).

    A response whose ``status_code`` is not 2xx is an error: its body is what went wrong, kept in the
    record's ``error`` as ``{"message", "code", "body"}``.
    """
    obj = _parse_line(raw, file_id, lineno)
    if obj is None:
        return None
    custom_id = obj["custom_id"]
    if obj.get("error") is not None:
        error = obj["error"]
        if isinstance(error, str):
            error = {"message": error, "code": None}
        elif not isinstance(error, dict):
            raise _broken(file_id, lineno, "error is neither an object nor a string")
        return record(custom_id, ERRORED, error=error)
    response = obj.get("response")
    if not isinstance(response, dict):
        raise _broken(file_id, lineno, "the line has neither a 'response' object nor an 'error'")
    status_code = _int(response.get("status_code"))
    if status_code is None:
        raise _broken(file_id, lineno, "response.status_code is missing or not an integer")
    body = response.get("body")
    if not 200 <= status_code < 300:
        error = {"message": _error_message(body), "code": status_code, "body": body}
        return record(custom_id, ERRORED, error=error)
    if not isinstance(body, dict):
        raise _broken(file_id, lineno, "response.body is missing or not an object")
    model = body.get("model")
    return record(
        custom_id,
        SUCCEEDED,
        response=body,
        usage=usage_of(body),
        model=model if isinstance(model, str) else None,
    )


def input_request(raw: bytes | str, *, file_id: str, lineno: int) -> tuple[str, str | None] | None:
    """An input line's custom id and model (None for a blank line)."""
    obj = _parse_line(raw, file_id, lineno)
    if obj is None:
        return None
    body = obj.get("body")
    model = body.get("model") if isinstance(body, Mapping) else None
    return obj["custom_id"], model if isinstance(model, str) else None


def merge(results: Iterable[tuple[str, Lines]], inputs: tuple[str, Lines] | None) -> Iterator[dict[str, Any]]:
    """Every request's record: those in ``results`` (``(file_id, lines)`` pairs: the output file, then
    the error file), then a ``missing`` one for each request of ``inputs`` seen in neither.

    Each line source is consumed only when reached, so a caller may download the next file lazily. A
    custom id answered twice keeps its first record (the later one is logged and dropped): a row per
    request is the promise the counts rest on.
    """
    seen: set[str] = set()
    for file_id, lines in results:
        for lineno, raw in enumerate(lines, start=1):
            got = result_record(raw, file_id=file_id, lineno=lineno)
            if got is None:
                continue
            if got["custom_id"] in seen:
                log.warning(
                    "Together's file %s, line %d answers %r a second time; keeping the first answer",
                    file_id,
                    lineno,
                    got["custom_id"],
                )
                continue
            seen.add(got["custom_id"])
            yield got
    if inputs is None:
        return
    file_id, lines = inputs
    for lineno, raw in enumerate(lines, start=1):
        request = input_request(raw, file_id=file_id, lineno=lineno)
        if request is None:
            continue
        custom_id, model = request
        if custom_id not in seen:
            # Added so that an input listing an id twice still yields it once.
            seen.add(custom_id)
            yield record(custom_id, MISSING, model=model)


def merge_parts(parts: Iterable[tuple[str, Iterable[dict[str, Any]]]]) -> Iterator[dict[str, Any]]:
    """The records of several batches (``(batch_id, records)`` pairs, each as :func:`merge` gives them)
    as one set: a custom id already given by an earlier part is logged and dropped, so every request is
    one row and counted once. A valid split never repeats an id; a hand-made list of batches may."""
    seen: dict[str, str] = {}
    for batch_id, records in parts:
        for rec in records:
            custom_id = rec["custom_id"]
            first = seen.get(custom_id)
            if first is not None:
                log.warning(
                    "custom_id %r of Together batch %s was already landed from batch %s; counted once",
                    custom_id,
                    batch_id,
                    first,
                )
                continue
            seen[custom_id] = batch_id
            yield rec


def worst_status(statuses: Iterable[str]) -> str:
    """COMPLETED only when every part is; else the worst ending among them."""
    return max(statuses, key=lambda status: _SEVERITY.get(status, len(_SEVERITY)), default="COMPLETED")


class Tally:
    """Counts per status, token usage summed, and usage per model, over the records it was given."""

    __slots__ = ("_by_model", "_counts", "_usage")

    def __init__(self) -> None:
        self._counts = dict.fromkeys(STATUSES, 0)
        self._usage = dict.fromkeys(USAGE_KEYS, 0)
        self._by_model: dict[str, dict[str, int]] = {}

    def add(self, rec: Mapping[str, Any]) -> None:
        self._counts[rec["status"]] += 1
        usage = rec.get("usage")
        if usage:
            for key in USAGE_KEYS:
                self._usage[key] += int(usage.get(key) or 0)
        if rec["status"] == SUCCEEDED or usage:
            model = rec.get("model") or UNKNOWN_MODEL
            line = self._by_model.get(model)
            if line is None:
                line = self._by_model[model] = {**dict.fromkeys(USAGE_KEYS, 0), "requests": 0}
            line["requests"] += 1
            for key in USAGE_KEYS:
                line[key] += int((usage or {}).get(key) or 0)

    @property
    def counts(self) -> dict[str, int]:
        return {**self._counts, "total": sum(self._counts.values())}

    @property
    def usage(self) -> dict[str, int]:
        return dict(self._usage)

    @property
    def usage_by_model(self) -> dict[str, dict[str, int]]:
        """``{model: {"prompt_tokens", "completion_tokens", "total_tokens", "requests"}}`` of the answered
        requests, models in name order (``requests`` counts answers, with usage or not: audio has none)."""
        return {model: dict(self._by_model[model]) for model in sorted(self._by_model)}


def build_manifest(
    *,
    batch_id: str,
    status: str,
    result_uri: str,
    tally: Tally,
    output_file_id: str | None,
    error_file_id: str | None,
) -> dict[str, Any]:
    """The small JSON-safe summary of landed results; ``schema_version`` lets readers evolve."""
    return {
        "schema_version": SCHEMA_VERSION,
        "batch_id": batch_id,
        "status": status,
        "result_uri": result_uri,
        "counts": tally.counts,
        "usage": tally.usage,
        "output_file_id": output_file_id,
        "error_file_id": error_file_id,
    }


def build_list_manifest(
    *,
    batches: list[Any],
    result_uri: str,
    tally: Tally,
) -> dict[str, Any]:
    """The manifest of one result set merged from ``batches`` (``BatchJob``s in the order given)."""
    statuses = [b.raw_status for b in batches]
    return {
        "schema_version": SCHEMA_VERSION_LIST,
        "batch_id": None,
        "status": worst_status(statuses),
        "result_uri": result_uri,
        "counts": tally.counts,
        "usage": tally.usage,
        "output_file_id": None,
        "error_file_id": None,
        "batch_ids": [b.id for b in batches],
        "statuses": statuses,
        "output_file_ids": [b.output_file_id for b in batches],
        "error_file_ids": [b.error_file_id for b in batches],
    }


def checked_min_success_ratio(value: Any) -> float | None:
    """``min_success_ratio`` as given, or a ValueError naming the field and the range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ValueError(
            f"min_success_ratio={value!r}: give a number greater than 0 and at most 1 (the share of "
            f"requests that must succeed, e.g. 0.95), or None for no minimum"
        )
    return float(value)


def success_ratio(counts: Mapping[str, int]) -> float:
    """Succeeded over all requests; a batch with no requests has nothing that failed."""
    total = counts["total"]
    return counts[SUCCEEDED] / total if total else 1.0


def request_failure(
    manifest: Mapping[str, Any], *, fail_on_request_errors: bool, min_success_ratio: float | None
) -> str | None:
    """Why the landed results fail the task, or None when they pass: the one place this is decided."""
    counts = manifest["counts"]
    failed = counts[ERRORED] + counts[MISSING]
    where = f"rows landed at {manifest['result_uri']}"
    ids = manifest.get("batch_ids")
    if ids:
        which = f"{len(ids)} Together batches ({', '.join(ids[:10])}{', ...' if len(ids) > 10 else ''})"
    else:
        which = f"Together batch {manifest['batch_id']}"
    summary = (
        f"{which} ({manifest['status']}): {counts[SUCCEEDED]} succeeded, "
        f"{counts[ERRORED]} errored, {counts[MISSING]} missing of {counts['total']}"
    )
    if fail_on_request_errors and failed:
        return f"{summary}; fail_on_request_errors=True allows none that did not succeed ({where})"
    if min_success_ratio is not None:
        ratio = success_ratio(counts)
        if ratio < min_success_ratio:
            return (
                f"{summary}; success ratio {ratio:.4f} is below min_success_ratio={min_success_ratio} "
                f"({where})"
            )
    return None
