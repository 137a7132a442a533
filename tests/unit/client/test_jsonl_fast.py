"""The msgspec path must say exactly what the json path says, on every line where the two parsers could
disagree: it may only vouch for a line json accepts with the same custom_id and model."""

import json
import random

import pytest

from together_provider.client import jsonl
from together_provider.client.errors import InputFileError

pytest.importorskip("msgspec")

CHAT = "/v1/chat/completions"
AUDIO = "/v1/audio/transcriptions"
GOOD = b'{"custom_id":"a","body":{"model":"m","messages":[{"role":"user","content":"hi"}]}}'
GOOD_AUDIO = b'{"custom_id":"a","method":"FILE","body":{"model":"m","file":"https://h/a.wav"}}'


def outcome(path, endpoint):
    try:
        return jsonl.validate_input_file(path, endpoint=endpoint)
    except InputFileError as exc:
        return str(exc)
    except RecursionError:
        return "RecursionError"


def both(tmp_path, monkeypatch, content, endpoint=CHAT):
    """(msgspec path's outcome, json path's outcome) on a file of ``content``."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    fast = outcome(path, endpoint)
    with monkeypatch.context() as patch:
        patch.setattr(jsonl, "_fast", None)
        return fast, outcome(path, endpoint)


def with_field(field: bytes) -> bytes:
    """GOOD with ``"x": <field>`` first: a field msgspec skips, json parses."""
    return b'{"x":' + field + b"," + GOOD[1:]


# Lines where msgspec and json differ in what they accept or decode.
TRICKY = {
    "invalid UTF-8 in a skipped field": with_field(b'"\xff"'),
    "invalid UTF-8 in a message": GOOD.replace(b"hi", b"h\xffi"),
    "overlong UTF-8": with_field(b'"\xc0\xaf"'),
    "truncated UTF-8 at line end": GOOD + b"\xc3",
    "UTF-8-encoded surrogate custom_id (json accepts)": GOOD.replace(b'"a"', b'"\xed\xa0\x80"'),
    "UTF-8-encoded surrogate in a message": GOOD.replace(b"hi", b"\xed\xb0\x80"),
    "escaped lone surrogate custom_id": GOOD.replace(b'"a"', b'"\\ud800"'),
    "escaped lone surrogate skipped": with_field(b'"\\udc00"'),
    "escaped reversed surrogate pair": GOOD.replace(b'"a"', b'"\\ude00\\ud83d"'),
    "escaped pair custom_id": GOOD.replace(b'"a"', b'"\\ud83d\\ude00"'),
    "escaped key": GOOD.replace(b'"custom_id"', b'"custom\\u005fid"'),
    "byte-order mark": b"\xef\xbb\xbf" + GOOD,
    "UTF-16 line (json detects it)": GOOD.decode().encode("utf-16-le"),
    "UTF-16 with BOM": GOOD.decode().encode("utf-16"),
    "NaN": with_field(b"NaN"),
    "Infinity": with_field(b"-Infinity"),
    "huge int (int() refuses over 4,300 digits)": with_field(b"-" + b"9" * 5000),
    "huge int custom_id": GOOD.replace(b'"a"', b"9" * 5000),
    "huge int body": GOOD.replace(b'{"model"', b"9" * 700 + b',"x":{"model"', 1).replace(b"}}", b"}", 1),
    "float overflow": with_field(b"1e400"),
    "leading zero": with_field(b"01"),
    "duplicate custom_id, last wins": GOOD[:-1] + b',"custom_id":"b"}',
    "duplicate custom_id, last not a string": GOOD[:-1] + b',"custom_id":5}',
    "duplicate custom_id, first not a string": b'{"custom_id":5,' + GOOD[1:],
    "duplicate body, last without messages": GOOD[:-1] + b',"body":{"model":"m"}}',
    "duplicate body, first without messages": b'{"body":{"model":"m"},' + GOOD[1:],
    "duplicate messages, last empty": GOOD.replace(b'"messages"', b'"messages":[1],"messages"').replace(
        b'[{"role":"user","content":"hi"}]', b"[]"
    ),
    "duplicate model, last blank": GOOD.replace(b'"model":"m"', b'"model":"m","model":" "'),
    "null model": GOOD.replace(b'"m"', b"null"),
    "whitespace model": GOOD.replace(b'"m"', b'"\\t "'),
    "messages not a list": GOOD.replace(b'[{"role":"user","content":"hi"}]', b'{"a":1}'),
    "empty custom_id": GOOD.replace(b'"a"', b'""'),
    "custom_id of 65 escaped chars": GOOD.replace(b'"a"', b'"' + b"\\u00e9" * 65 + b'"'),
    "custom_id of 64 escaped chars": GOOD.replace(b'"a"', b'"' + b"\\u00e9" * 64 + b'"'),
    "trailing data": GOOD + b" x",
    "trailing whitespace": GOOD + b" \t\r",
    "vertical tab": GOOD + b"\x0b",
    "form feed first": b"\x0c" + GOOD,
    "no-break space between tokens": GOOD.replace(b",", "\u00a0,".encode(), 1),
    "raw tab in a string": GOOD.replace(b"hi", b"h\ti"),
    "raw NUL in a string": GOOD.replace(b"hi", b"h\x00i"),
    "raw DEL in a string": GOOD.replace(b"hi", b"h\x7fi"),
    "bad escape": GOOD.replace(b"hi", b"\\x41"),
    "trailing comma": GOOD.replace(b"}]", b",}]"),
    "bad JSON inside a message": GOOD.replace(b'"hi"', b"tru"),
    "deep nesting": with_field(b"[" * 100_000 + b"]" * 100_000),
    "top-level array": b"[" + GOOD + b"]",
    "top-level string": b'"' + GOOD.replace(b'"', b'\\"') + b'"',
    "CR line ending": GOOD + b"\r",
    "blank with CR": b"\r",
}


@pytest.mark.parametrize("content", TRICKY.values(), ids=TRICKY.keys())
@pytest.mark.parametrize("endpoint", [CHAT, "/v1/completions", None])
def test_both_paths_agree_on_tricky_lines(tmp_path, monkeypatch, content, endpoint):
    content = GOOD.replace(b'"a"', b'"first"') + b"\n" + content + b"\n"
    fast, slow = both(tmp_path, monkeypatch, content, endpoint)
    assert fast == slow


def test_json_decides_where_msgspec_is_stricter(tmp_path, monkeypatch):
    """json accepts a UTF-8-encoded surrogate, strict UTF-8 does not: the line is still valid."""
    content = GOOD.replace(b'"a"', b'"\xed\xa0\x80"') + b"\n" + GOOD + b"\n"
    fast, slow = both(tmp_path, monkeypatch, content)
    assert fast == slow and fast.lines == 2


def test_completions_prompt(tmp_path, monkeypatch):
    for prompt, ok in [(b'"p"', True), (b"[]", True), (b"[1, [2]]", True), (b"null", False), (b"5", False)]:
        content = b'{"custom_id":"a","body":{"model":"m","prompt":' + prompt + b"}}\n"
        fast, slow = both(tmp_path, monkeypatch, content, "/v1/completions")
        assert fast == slow
        assert isinstance(fast, jsonl.InputFileSummary) is ok


# valid for chat and audio alike, so the line after it decides
FIRST_AUDIO = GOOD_AUDIO.replace(b'"a"', b'"first"').replace(b'"}}', b'","messages":[1]}}')
AUDIO_TRICKY = {
    "good": GOOD_AUDIO,
    "method escaped": GOOD_AUDIO.replace(b'"FILE"', b'"FIL\\u0045"'),
    "method twice, last wrong": GOOD_AUDIO.replace(b'"body"', b'"method":"GET","body"'),
    "method twice, last right": GOOD_AUDIO.replace(b'{"custom_id"', b'{"method":"GET","custom_id"'),
    "method null": GOOD_AUDIO.replace(b'"FILE"', b"null"),
    "method missing": GOOD_AUDIO.replace(b'"method":"FILE",', b""),
    "method in body only": GOOD_AUDIO.replace(b'"method":"FILE",', b"").replace(
        b'{"model"', b'{"method":"FILE","model"'
    ),
    "file missing": GOOD_AUDIO.replace(b',"file":"https://h/a.wav"', b""),
    "file a number": GOOD_AUDIO.replace(b'"https://h/a.wav"', b"5"),
    "file a path": GOOD_AUDIO.replace(b"https://h/a.wav", b"/a.wav"),
    "file with escaped scheme": GOOD_AUDIO.replace(b"https:", b"\\u0068ttps:"),
    "file with trailing space": GOOD_AUDIO.replace(b"a.wav", b"a.wav "),
    "file with lone surrogate": GOOD_AUDIO.replace(b"a.wav", b"\\ud800.wav"),
    "file bad IPv6": GOOD_AUDIO.replace(b"//h/", b"//[::1/"),
    "file twice, first wrong": GOOD_AUDIO.replace(b'"model"', b'"file":"x","model"'),
    "file twice, last wrong": GOOD_AUDIO.replace(b'"}}', b'","file":"x"}}'),
    "chat line": GOOD,
}


@pytest.mark.parametrize("content", AUDIO_TRICKY.values(), ids=AUDIO_TRICKY.keys())
@pytest.mark.parametrize("endpoint", [AUDIO, "/v1/audio/translations", CHAT])
def test_both_paths_agree_on_audio_lines(tmp_path, monkeypatch, content, endpoint):
    content = FIRST_AUDIO + b"\n" + content + b"\n"
    fast, slow = both(tmp_path, monkeypatch, content, endpoint)
    assert fast == slow


def test_valid_audio_lines_never_reach_the_json_path(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "_check_line", lambda *args: pytest.fail(f"json path used: {args[:2]}"))
    path = tmp_path / "in.jsonl"
    path.write_bytes(GOOD_AUDIO + b"\n" + GOOD_AUDIO.replace(b'"a"', b'"b"').replace(b"https", b"http"))
    assert jsonl.validate_input_file(path, endpoint=AUDIO).lines == 2


def test_valid_lines_never_reach_the_json_path(tmp_path, monkeypatch):
    """Otherwise every test above passes and the fast path is silently the slow one."""
    monkeypatch.setattr(jsonl, "_check_line", lambda *args: pytest.fail(f"json path used: {args[:2]}"))
    lines = [
        GOOD,
        with_field(b'{"nested": [1, 2.5e-3, true, null, "\\u00e9\\ud83d\\ude00"]}').replace(b'"a"', b'"c"'),
        GOOD.replace(b'"a"', '"b-é€😀"'.encode()).replace(b"hi", "Grüße".encode()),
        GOOD.replace(b'"a"', b'"' + b"x" * 64 + b'"'),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines))
    summary = jsonl.validate_input_file(path, endpoint=CHAT)
    assert summary.lines == 4 and summary.models == {"m"}


_ALPHABET = [*b'{}[]",:\\ 0123456789.eE+-truefalsnNIabu\t\r\x0b\x00\x7f', 0xC3, 0xA9, 0xED, 0xA0, 0xFF]


def test_random_mutations_agree(tmp_path, monkeypatch):
    """Seeded, so a failure replays: byte edits of good lines, each checked on both paths."""
    rng = random.Random(5)
    seeds = [
        GOOD,
        with_field(b'[1, -2.5e+3, {"k": "v\\n"}, null]'),
        json.dumps(
            {"custom_id": "é😀", "body": {"model": "ü", "messages": [{"c": "ß"}]}}, ensure_ascii=False
        ).encode(),
    ]
    for case in range(1500):
        line = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(line) + 1)
            edit = rng.random()
            if edit < 0.4:
                line[at:at] = bytes([rng.choice(_ALPHABET)])
            elif edit < 0.7:
                del line[at : at + 1]
            else:
                line[at : at + 1] = bytes([rng.choice(_ALPHABET)])
        content = GOOD.replace(b'"a"', b'"first"') + b"\n" + bytes(line) + b"\n"
        fast, slow = both(tmp_path, monkeypatch, content)
        assert fast == slow, f"case {case}: {bytes(line)!r}"


def test_random_mutations_of_audio_lines_agree(tmp_path, monkeypatch):
    rng = random.Random(7)
    for case in range(500):
        line = bytearray(GOOD_AUDIO)
        at = rng.randrange(len(line) + 1)
        if rng.random() < 0.5:
            line[at:at] = bytes([rng.choice(_ALPHABET)])
        else:
            del line[at : at + 1]
        content = FIRST_AUDIO + b"\n" + bytes(line) + b"\n"
        fast, slow = both(tmp_path, monkeypatch, content, AUDIO)
        assert fast == slow, f"case {case}: {bytes(line)!r}"
