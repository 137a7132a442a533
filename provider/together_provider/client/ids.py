"""What a batch or file id may be, checked once for every place one enters: a task's argument, an
upstream task's output, or a server's answer.

An id becomes one segment of a URL path and appears in log lines and messages, so two kinds of text are
refused rather than escaped: ids made only of dots, which HTTP clients (urllib3, yarl) collapse as dot
segments, so that a cancel of batch ``..`` would reach ``POST /v1/cancel``; and ids holding control
characters, which would let an id forge a log line (a CR/LF) or hide part of a message.
"""

from __future__ import annotations

import ast
import json
import unicodedata
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

# Together's ids are short (a UUID, ``file-`` plus one); anything far longer is not an id.
MAX_ID_LENGTH = 256
# A templated id that rendered to nothing: Jinja turns a None into the text "None".
_EMPTY_IDS = ("", "None", "null")


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an id, or None when it can."""
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    text = value.strip()
    if len(text) > MAX_ID_LENGTH:
        return f"is {len(text)} characters long, more than any Together id ({MAX_ID_LENGTH})"
    if set(text) == {"."}:
        return "is only dots, which a URL would read as a relative path, not an id"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") for char in text):
        return "holds control characters (such as a line break), which no Together id has"
    return None


def checked_id(value: Any, field: str) -> str:
    """The id without surrounding whitespace, or a ValueError naming ``field`` and the fix."""
    problem = id_problem(value)
    if problem is not None:
        raise ValueError(
            f"{field} {problem}: give a Together id (a batch's UUID, or 'file-...'), got {shown(value)}"
        )
    return str(value).strip()


def path_segment(value: Any, field: str) -> str:
    """The id as exactly one percent-encoded segment of a URL path."""
    return quote(checked_id(value, field), safe="")


def shown(value: Any, limit: int = 80) -> str:
    """A value for a message: quoted, control characters escaped, and cut to ``limit`` characters."""
    text = repr(value[: limit + 1] if isinstance(value, str) else value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def clean_id(value: Any) -> str | None:
    """The id as text, or None when it is absent or a template rendered it empty."""
    if value is None:
        return None
    text = str(value).strip()
    return None if text in _EMPTY_IDS else text


def require_id(value: Any, field: str) -> str:
    text = clean_id(value)
    if text is None:
        raise ValueError(f"{field} must be a non-empty string, got {shown(value)}")
    return checked_id(text, field)


def batch_ids_of(value: Any, field: str = "batch_id") -> str | list[str]:
    """One id as a string, or several as a list, from what a templated field rendered.

    A list (or any sequence, such as the lazy one a mapped task's output gives) is a list wait. So is a
    string that reads as a list, since Jinja renders an XCom list as its Python repr (``"['b1', 'b2']"``)
    unless the DAG renders native objects, and ``| tojson`` renders it as JSON. Anything else is one id.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("["):
            return require_id(value, field)
        value = _parsed_list(text, field)
    elif not isinstance(value, Sequence) or isinstance(value, bytes | bytearray):
        return require_id(value, field)
    ids = list(value)
    if not ids:
        raise ValueError(f"{field} is an empty list: give at least one Together batch id to wait for")
    seen: set[str] = set()
    checked = []
    for index, item in enumerate(ids):
        item = checked_id(item, f"{field}[{index}]")
        if item in seen:
            raise ValueError(f"{field} lists batch {item!r} twice: give each batch once")
        seen.add(item)
        checked.append(item)
    return checked


def _parsed_list(text: str, field: str) -> list[Any]:
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(parsed, list | tuple):
            return list(parsed)
    raise ValueError(
        f"{field} looks like a list but is neither a JSON list nor a Python list literal: {shown(text, 200)}"
    )
