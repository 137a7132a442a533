"""The fast path of :func:`together_provider.client.jsonl.validate_input_file`.

``json.loads`` builds every string and number of a request although the rules read three fields; a
typed msgspec decoder builds only those and skips the rest, several times faster. msgspec comes with
Airflow 3 (core and task SDK), not with this provider, so importing this module may fail on Airflow 2:
the validator then sends every line through the json path.

The fast path only ever answers "this line passes": for anything else it answers None and the json path
decides and words the error, so both paths say the same. That makes one thing matter: msgspec must
never accept a line ``json.loads`` refuses. It does not check the UTF-8 of what it skips, so the caller
hands it only text that has passed a strict UTF-8 decode; everything else msgspec is stricter about
(NaN, lone surrogates, a byte-order mark) it refuses, and json gets the line.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Generic, TypeVar

import msgspec


class _Body(msgspec.Struct):
    model: str


class _ChatBody(_Body):
    messages: list[msgspec.Raw]


class _CompletionBody(_Body):
    prompt: str | list[msgspec.Raw]


class _AudioBody(_Body):
    file: str


_B = TypeVar("_B", bound=_Body)


class _Line(msgspec.Struct, Generic[_B]):
    custom_id: str
    body: _B


class _AudioLine(msgspec.Struct):
    custom_id: str
    method: str
    body: _AudioBody


_BODIES: dict[str | None, type[_Body]] = {
    "/v1/chat/completions": _ChatBody,
    "/v1/completions": _CompletionBody,
}

Passes = Callable[["bytes | memoryview"], "tuple[str, str] | None"]


def checker(endpoint: str | None, *, audio: Collection[str], audio_url: Callable[[str], bool]) -> Passes:
    """A function of one line giving ``(custom_id, model)`` if the line passes every rule of one line
    except the custom_id length and uniqueness, which the caller checks; None when json must decide.

    :param audio: the endpoints whose lines need ``"method": "FILE"`` and ``body.file``, and
        ``audio_url`` the rule for that URL: the validator's own, so the two paths cannot drift.
    """
    if endpoint in audio:
        return _audio_checker(audio_url)
    body = _BODIES.get(endpoint, _Body)
    decoder: msgspec.json.Decoder[_Line[Any]] = msgspec.json.Decoder(_Line[body])  # type: ignore[valid-type]
    decode = decoder.decode
    chat = body is _ChatBody

    def passes(line: bytes | memoryview) -> tuple[str, str] | None:
        try:
            record = decode(line)
        # Whatever msgspec refuses, for whatever reason (even RecursionError), json decides.
        except Exception:
            return None
        model = record.body.model
        if not record.custom_id or not model.strip() or (chat and not record.body.messages):
            return None
        return record.custom_id, model

    return passes


def _audio_checker(audio_url: Callable[[str], bool]) -> Passes:
    decode = msgspec.json.Decoder(_AudioLine).decode

    def passes(line: bytes | memoryview) -> tuple[str, str] | None:
        try:
            record = decode(line)
        except Exception:
            return None
        model = record.body.model
        if (
            not record.custom_id
            or not model.strip()
            or record.method != "FILE"
            or not audio_url(record.body.file)
        ):
            return None
        return record.custom_id, model

    return passes
