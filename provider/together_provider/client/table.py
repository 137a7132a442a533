"""A landed row as typed columns, without I/O and without pyarrow: the table ``result_format="parquet"``
writes, its column types, and the way back from a table's row to the row.

A row (see :mod:`together_provider.client.results`) keeps the answer's body as nested JSON, which a
warehouse cannot load as columns. :func:`project` takes out what a query wants (the answer's text, its
JSON when the text is JSON, the finish reason, the tokens, the error's code and message) and keeps the
answer's body and the error whole as JSON strings, so nothing is lost: :func:`row_of` rebuilds the row
exactly, which is how a repair merges a round into a landed table.

Column types are named here as strings (``string``, ``int32``, ``int64``); ``tasks/parquet.py`` maps
them to Arrow types.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from together_provider.client.results import USAGE_KEYS

JSONL = "jsonl"
PARQUET = "parquet"
FORMATS = (JSONL, PARQUET)


class Column(NamedTuple):
    name: str
    type: str
    description: str


COLUMNS: tuple[Column, ...] = (
    Column("custom_id", "string", "the request's custom_id"),
    Column("status", "string", "succeeded, errored or missing"),
    Column("round", "int32", "the repair round that gave the row (0: the first landing)"),
    Column("batch_id", "string", "the Together batch the row came from"),
    Column("model", "string", "the model the answer names (for a missing row, the input line's)"),
    Column(
        "content",
        "string",
        "the answer's text: choices[0].message.content (chat), choices[0].text (completions), text (audio)",
    ),
    Column(
        "content_json",
        "string",
        "the content when it parses as a JSON object or array (structured output), else null",
    ),
    Column("finish_reason", "string", "choices[0].finish_reason"),
    Column("prompt_tokens", "int64", "the answer's usage.prompt_tokens"),
    Column("completion_tokens", "int64", "the answer's usage.completion_tokens"),
    Column("total_tokens", "int64", "the answer's usage.total_tokens"),
    Column("error_code", "string", "the error's code as text (an HTTP status such as 429, or a name)"),
    Column("error_message", "string", "the error's message"),
    Column("response", "string", "the answer's whole body as JSON"),
    Column("error", "string", "the whole error as JSON"),
)
NAMES = tuple(column.name for column in COLUMNS)
# Few distinct values per row group: dictionary encoding and min/max statistics pay off there, while on
# the answers' text they cost time and footer bytes for nothing.
SMALL_COLUMNS = ("status", "round", "batch_id", "model", "finish_reason", "error_code")
STATISTICS_COLUMNS = ("custom_id", *SMALL_COLUMNS, *USAGE_KEYS)
# What a tally needs of a landed row (counts, tokens per model): read back without the answers' text.
TALLY_COLUMNS = ("status", "model", *USAGE_KEYS)

# A row group holds at most this many rows or about this many bytes of text, whichever comes first: a
# worker holds one row group (as Python values and once as Arrow arrays), whatever the output's size.
ROW_GROUP_ROWS = 10_000
ROW_GROUP_BYTES = 32 * 1024 * 1024


def checked_format(value: Any) -> str:
    """``result_format`` as given, or a ValueError naming the field and the choices."""
    if isinstance(value, str) and value.strip().lower() in FORMATS:
        return value.strip().lower()
    raise ValueError(
        f"result_format={value!r}: give 'jsonl' (one JSON row per request, the default) or 'parquet' (typed "
        f"columns a warehouse loads directly; needs the [parquet] extra)"
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(content: Any) -> str | None:
    """A message's content as text: a string, or the text parts of a list of parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            part["text"]
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)
        ]
        return "".join(parts) if parts else None
    return None


def _first_choice(body: Any) -> Mapping[str, Any] | None:
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        return choices[0]
    return None


def text_of(body: Any) -> str | None:
    """The answer's text: a chat completion's first message, a completion's first text, a transcript."""
    choice = _first_choice(body)
    if choice is not None:
        message = choice.get("message")
        if isinstance(message, Mapping):
            return _text(message.get("content"))
        return _text(choice.get("text"))
    if isinstance(body, Mapping):
        return _text(body.get("text"))
    return None


def finish_reason_of(body: Any) -> str | None:
    choice = _first_choice(body)
    reason = choice.get("finish_reason") if choice is not None else None
    return reason if isinstance(reason, str) else None


def json_content(text: str | None) -> str | None:
    """``text`` when it is a JSON object or array, else None. The row holds only the answer, not whether
    the request asked for JSON (``response_format``), so every answer is tried: a scalar (``42``,
    ``"yes"``) is left out, since plain text often parses as one."""
    if not text:
        return None
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        value = json.loads(stripped)
    except ValueError:
        return None
    return stripped if isinstance(value, dict | list) else None


def _code(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def project(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """One row's values in the order of :data:`COLUMNS`."""
    body = row.get("response")
    error = row.get("error")
    usage = row.get("usage") or {}
    content = text_of(body)
    error_message = error.get("message") if isinstance(error, Mapping) else error
    return (
        row["custom_id"],
        row["status"],
        int(row.get("round") or 0),
        row.get("batch_id"),
        row.get("model"),
        content,
        json_content(content),
        finish_reason_of(body),
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        usage.get("total_tokens"),
        _code(error.get("code")) if isinstance(error, Mapping) else None,
        None if error_message is None else str(error_message),
        None if body is None else _dumps(body),
        None if error is None else _dumps(error),
    )


def row_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The row a table's row was projected from (what :func:`project` kept whole is parsed back); a
    table read with only some columns gives the row's fields those columns hold, the others None."""
    response, error = values.get("response"), values.get("error")
    tokens = {key: values.get(key) for key in USAGE_KEYS}
    usage = (
        None
        if all(value is None for value in tokens.values())
        else {key: int(value or 0) for key, value in tokens.items()}
    )
    return {
        "custom_id": values.get("custom_id"),
        "status": values.get("status"),
        "response": None if response is None else json.loads(response),
        "error": None if error is None else json.loads(error),
        "usage": usage,
        "model": values.get("model"),
        "round": values.get("round"),
        "batch_id": values.get("batch_id"),
    }


def text_bytes(values: tuple[Any, ...]) -> int:
    """About how many bytes a projected row's text holds: what bounds a row group in memory."""
    return sum(len(value) for value in values if isinstance(value, str))


def schema_fields() -> list[tuple[str, str, str]]:
    """``(name, type, description)`` per column: the table's schema for lineage."""
    return [(column.name, column.type, column.description) for column in COLUMNS]
