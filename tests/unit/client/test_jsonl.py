import hashlib
import json
import subprocess
import sys

import pytest

from together_provider.client import jsonl
from together_provider.client.errors import InputFileError
from together_provider.client.jsonl import validate_input_file


@pytest.fixture(autouse=True, params=["msgspec", "json"])
def parse_path(request, monkeypatch):
    """Every test here runs on both paths: msgspec (when Airflow brought it) and the json fallback."""
    if request.param == "msgspec":
        pytest.importorskip("msgspec")
        assert jsonl._fast is not None
    else:
        monkeypatch.setattr(jsonl, "_fast", None)
    return request.param


def line(custom_id="r1", model="m", **extra):
    record = {
        "custom_id": custom_id,
        "body": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
    }
    record.update(extra)
    return json.dumps(record)


def write(tmp_path, text, name="in.jsonl"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_valid_file_summary(tmp_path):
    text = "\n".join(line(f"r{i}", model=f"m{i % 2}") for i in range(5)) + "\n"
    path = write(tmp_path, text)
    summary = validate_input_file(path, endpoint="/v1/chat/completions")
    assert summary.lines == 5
    assert summary.bytes == len(text)
    assert summary.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert summary.models == {"m0", "m1"}


BAD = [
    ("not json", [line("a"), "{oops"], 2, "not valid JSON"),
    ("array line", [line("a"), "[1, 2]"], 2, "must be a JSON object"),
    ("blank line", [line("a"), "", line("b")], 2, "line is empty"),
    ("missing custom_id", [json.dumps({"body": {"model": "m"}})], 1, "'custom_id' is missing"),
    (
        "numeric custom_id",
        [json.dumps({"custom_id": 5, "body": {"model": "m"}})],
        1,
        "'custom_id' is missing",
    ),
    ("duplicate custom_id", [line("a"), line("b"), line("a")], 3, "'custom_id' 'a' is used twice"),
    ("long custom_id", [line("x" * 65)], 1, "65 characters, over the limit of 64"),
    ("missing body", [json.dumps({"custom_id": "a"})], 1, "'body' is missing"),
    ("body not object", [json.dumps({"custom_id": "a", "body": "hi"})], 1, "'body' must be a JSON object"),
    (
        "missing model",
        [json.dumps({"custom_id": "a", "body": {"messages": []}})],
        1,
        "'body.model' is missing",
    ),
    ("no messages", [json.dumps({"custom_id": "a", "body": {"model": "m"}})], 1, "'body.messages' must be"),
]


@pytest.mark.parametrize(("case", "lines", "line_no", "message"), BAD, ids=[b[0] for b in BAD])
def test_rules_name_line_and_rule(tmp_path, case, lines, line_no, message):
    path = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(InputFileError, match=message) as info:
        validate_input_file(path, endpoint="/v1/chat/completions")
    assert info.value.line == line_no
    assert f"line {line_no}:" in str(info.value)


AUDIO_ENDPOINTS = ["/v1/audio/transcriptions", "/v1/audio/translations"]


def audio(custom_id="a", method="FILE", file="https://example.com/a.wav", **body):
    record = {"custom_id": custom_id, "body": {"model": "openai/whisper-large-v3", **body}}
    if method is not None:
        record["method"] = method
    if file is not None:
        record["body"]["file"] = file
    return json.dumps(record)


@pytest.mark.parametrize("endpoint", AUDIO_ENDPOINTS)
def test_audio_lines_with_method_and_url_pass(tmp_path, endpoint):
    text = audio("a") + "\n" + audio("b", file="http://host:8080/clips/b.mp3?sig=x", language="de") + "\n"
    summary = validate_input_file(write(tmp_path, text), endpoint=endpoint)
    assert summary.lines == 2 and summary.models == {"openai/whisper-large-v3"}


AUDIO_BAD = [
    ("no method", audio(method=None), "'method' must be \"FILE\" for {e} \\(it is missing\\)"),
    ("method POST", audio(method="POST"), "'method' must be \"FILE\" for {e} \\(got 'POST'\\)"),
    ("method lower case", audio(method="file"), "'method' must be \"FILE\""),
    ("no file", audio(file=None), "'body.file' must be the http\\(s\\) URL .* \\(it is missing\\)"),
    ("file not a string", audio(file=["x"]), "'body.file' must be .* \\(got \\['x'\\]\\)"),
    ("file a path", audio(file="/data/a.wav"), "'body.file' must be .* \\(got '/data/a.wav'\\)"),
    ("file ftp", audio(file="ftp://host/a.wav"), "'body.file' must be the http\\(s\\) URL"),
    ("file without host", audio(file="https:///a.wav"), "'body.file' must be the http\\(s\\) URL"),
    ("file padded", audio(file=" https://h/a.wav"), "'body.file' must be the http\\(s\\) URL"),
    ("file bad IPv6", audio(file="https://[::1/a.wav"), "'body.file' must be the http\\(s\\) URL"),
    ("no model", audio().replace('"model": "openai/whisper-large-v3", ', ""), "'body.model' is missing"),
]


@pytest.mark.parametrize("endpoint", AUDIO_ENDPOINTS)
@pytest.mark.parametrize(("case", "bad", "message"), AUDIO_BAD, ids=[b[0] for b in AUDIO_BAD])
def test_audio_rules_name_line_and_rule(tmp_path, endpoint, case, bad, message):
    path = write(tmp_path, audio("first") + "\n" + bad + "\n")
    with pytest.raises(InputFileError, match=message.format(e=endpoint)) as info:
        validate_input_file(path, endpoint=endpoint)
    assert info.value.line == 2
    assert "in.jsonl, line 2:" in str(info.value)


def test_audio_rules_apply_only_to_audio(tmp_path):
    """A chat line needs no method or file, and a long bad value is shortened in the message."""
    assert validate_input_file(write(tmp_path, line("a") + "\n"), endpoint="/v1/chat/completions").lines == 1
    path = write(tmp_path, audio(file="x" * 500) + "\n")
    with pytest.raises(InputFileError, match=r"\(got 'x{56}\.\.\.\); Together fetches"):
        validate_input_file(path, endpoint=AUDIO_ENDPOINTS[0])


def test_custom_id_of_64_is_fine(tmp_path):
    assert validate_input_file(write(tmp_path, line("x" * 64) + "\n")).lines == 1


def test_non_utf8_line(tmp_path):
    path = write(tmp_path, line("a").encode() + b"\n" + b'{"custom_id": "\xff\xfe"}\n')
    with pytest.raises(InputFileError, match="line 2: line is not valid UTF-8"):
        validate_input_file(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.jsonl", None, "file not found"),
        ("empty.jsonl", "", "file is empty"),
        ("data.json", line("a"), "must be JSON Lines"),
    ],
)
def test_file_rules(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputFileError, match=message) as info:
        validate_input_file(path)
    assert info.value.line is None


def test_line_count_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_LINES", 3)
    path = write(tmp_path, "\n".join(line(f"r{i}") for i in range(4)) + "\n")
    with pytest.raises(InputFileError, match="line 4: more than 3 requests"):
        validate_input_file(path)


def test_real_line_count_limit(tmp_path):
    path = write(tmp_path, "\n".join(line(f"r{i}") for i in range(50_001)) + "\n")
    with pytest.raises(InputFileError, match="line 50001: more than 50,000 requests"):
        validate_input_file(path)


def test_file_size_limit(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        handle.truncate(jsonl.MAX_FILE_BYTES + 1)
    with pytest.raises(InputFileError, match="over the Batch API limit of 104,857,600 bytes"):
        validate_input_file(path)


def test_line_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 100)
    path = write(tmp_path, line("a") + "\n" + line("b", pad="y" * 200) + "\n")
    with pytest.raises(InputFileError, match="line 2: line is over the 100-byte limit"):
        validate_input_file(path)


def test_line_of_exactly_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 200)
    fits = line("a", pad="y" * (199 - len(line("a", pad=""))))  # 199 bytes and its newline
    too_long = line("b", pad="y" * (200 - len(line("b", pad=""))))
    path = write(tmp_path, fits + "\n" + too_long + "\n")
    with pytest.raises(InputFileError, match="line 2: line is over the 200-byte limit"):
        validate_input_file(path)


@pytest.mark.parametrize("block", [1, 7, 64])
def test_lines_across_read_blocks(tmp_path, monkeypatch, block):
    """Lines, and characters of several bytes, cut by the reads: same summary, same line numbers."""
    text = "".join(
        json.dumps(
            {"custom_id": f"r{i}-é€😀", "body": {"model": "Grüße", "messages": [1]}}, ensure_ascii=False
        )
        + "\n"
        for i in range(20)
    )
    text += line("last")
    path = write(tmp_path, text)
    whole = validate_input_file(path, endpoint="/v1/chat/completions")
    monkeypatch.setattr(jsonl, "_BLOCK", block)
    assert validate_input_file(path, endpoint="/v1/chat/completions") == whole
    assert whole.lines == 21 and whole.sha256 == hashlib.sha256(text.encode()).hexdigest()
    path = write(tmp_path, text + "\n" + line("last") + "\n")
    with pytest.raises(InputFileError, match="line 22: 'custom_id' 'last' is used twice"):
        validate_input_file(path)


@pytest.mark.parametrize("newline", ["", "\n"])
def test_long_line_across_read_blocks(tmp_path, monkeypatch, newline):
    monkeypatch.setattr(jsonl, "_BLOCK", 16)
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 100)
    path = write(tmp_path, line("a") + "\n" + line("b", pad="y" * 500) + newline)
    with pytest.raises(InputFileError, match="line 2: line is over the 100-byte limit"):
        validate_input_file(path)


def test_memory_stays_flat_on_a_large_file(tmp_path, parse_path):
    """A ~95 MB file with 50,000 lines validates without reading it whole. Measured in a fresh process,
    so the peak RSS of earlier tests cannot hide growth."""
    pad = "z" * 1900
    path = tmp_path / "large.jsonl"
    with open(path, "w") as handle:
        for i in range(50_000):
            handle.write(line(f"req-{i}", pad=pad) + "\n")
    probe = (
        "import resource, sys\n"
        "from together_provider.client import jsonl\n"
        "from together_provider.client.jsonl import validate_input_file\n"
        "if sys.argv[2] == 'json':\n"
        "    jsonl._fast = None\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "summary = validate_input_file(sys.argv[1])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(summary.lines, summary.bytes, after - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(path), parse_path], capture_output=True, text=True, check=True
    )
    lines, size, grown_kb = map(int, out.stdout.split())
    assert lines == 50_000 and size > 95_000_000
    assert grown_kb < 30_000, f"peak RSS grew by {grown_kb} KB while validating a {size:,}-byte file"


def test_without_msgspec_every_line_takes_the_json_path(tmp_path):
    """Airflow 2 may not bring msgspec: the import fails quietly and validation still works."""
    path = write(tmp_path, line("a") + "\n" + line("a") + "\n")
    probe = (
        "import sys\n"
        "sys.modules['msgspec'] = None\n"
        "from together_provider.client import jsonl\n"
        "assert jsonl._fast is None\n"
        "try:\n"
        "    jsonl.validate_input_file(sys.argv[1])\n"
        "except jsonl.InputFileError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith(
        "line 2: 'custom_id' 'a' is used twice; each request needs a unique id"
    )
