"""What a batch or file id may be, checked once for every place one enters: a task's argument, an
upstream task's output, or a server's answer.

An id becomes one segment of a URL path and appears in log lines and messages, so two kinds of text are
refused rather than escaped: ids made only of dots, which HTTP clients (urllib3, yarl) collapse as dot
segments, so that a cancel of batch ``..`` would reach ``POST /v1/cancel``; and ids holding control
characters, which would let an id forge a log line (a CR/LF) or hide part of a message.
"""

from __future__ import annotations

import unicodedata
from typing import Any
from urllib.parse import quote

# Together's ids are short (a UUID, ``file-`` plus one); anything far longer is not an id.
MAX_ID_LENGTH = 256


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
