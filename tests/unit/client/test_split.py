"""client.split: one pass checks every line and cuts the input into parts under both per-batch limits."""

import hashlib
import io
import json

import pytest

from together_provider.client import jsonl
from together_provider.client.errors import InputFileError
from together_provider.client.split import checked_limits, plan_split


@pytest.fixture(autouse=True, params=["msgspec", "json"])
def parse_path(request, monkeypatch):
    """Both line paths: msgspec (when Airflow brought it) and the json fallback."""
    if request.param == "msgspec":
        pytest.importorskip("msgspec")
        assert jsonl._fast is not None
    else:
        monkeypatch.setattr(jsonl, "_fast", None)
    return request.param


def line(i, pad=0, custom_id=None):
    """One request line of a fixed length for a given ``pad``, newline included."""
    record = {
        "custom_id": custom_id or f"r{i:05d}",
        "body": {"model": "m", "messages": [{"role": "user", "content": "x" * pad}]},
    }
    return (json.dumps(record) + "\n").encode()


def plan(data, **limits):
    return plan_split(
        io.BytesIO(data), name="in.jsonl", size=len(data), endpoint="/v1/chat/completions", **limits
    )


def slices(data, result):
    return [data[p.offset : p.offset + p.length] for p in result.parts]


def check_parts(data, result):
    """The parts tile the input in order, and each part's hash, lines and first line are its own."""
    pieces = slices(data, result)
    assert b"".join(pieces) == data
    first = 1
    for number, (part, piece) in enumerate(zip(result.parts, pieces, strict=True), start=1):
        assert part.number == number
        assert part.sha256 == hashlib.sha256(piece).hexdigest()
        assert part.lines == len(piece.splitlines()) and part.first_line == first
        first += part.lines
    assert result.lines == first - 1
    assert result.sha256 == hashlib.sha256(data).hexdigest()


def test_exactly_the_request_limit_is_one_part():
    data = b"".join(line(i) for i in range(5))
    result = plan(data, max_requests=5)
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [5]


def test_one_over_the_request_limit_starts_a_part():
    data = b"".join(line(i) for i in range(6))
    result = plan(data, max_requests=5)
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [5, 1]


def test_exactly_the_byte_limit_fills_a_part():
    size = len(line(0))
    data = b"".join(line(i) for i in range(7))
    result = plan(data, max_bytes=3 * size)
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [3, 3, 1]
    assert [p.length for p in result.parts] == [3 * size, 3 * size, size]


def test_one_byte_under_three_lines_holds_two():
    size = len(line(0))
    data = b"".join(line(i) for i in range(5))
    result = plan(data, max_bytes=3 * size - 1)
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [2, 2, 1]


def test_the_byte_limit_binds_before_the_request_limit():
    size = len(line(0, pad=100))
    data = b"".join(line(i, pad=100) for i in range(10))
    result = plan(data, max_requests=5, max_bytes=2 * size)
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [2] * 5


def test_the_request_limit_binds_before_the_byte_limit():
    data = b"".join(line(i) for i in range(10))
    result = plan(data, max_requests=3, max_bytes=len(data))
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [3, 3, 3, 1]


def test_lines_of_mixed_sizes_never_pass_either_limit():
    data = b"".join(line(i, pad=(i * 37) % 300) for i in range(200))
    limit = 2000
    result = plan(data, max_requests=7, max_bytes=limit)
    check_parts(data, result)
    assert all(p.lines <= 7 and p.length <= limit for p in result.parts)
    # Each cut was needed: the next line would not have fitted.
    for part, following in zip(result.parts, result.parts[1:], strict=False):
        next_line = len(line(following.first_line - 1, pad=((following.first_line - 1) * 37) % 300))
        assert part.lines == 7 or part.length + next_line > limit


@pytest.mark.parametrize("block", [64, 333, 4096])
def test_cuts_inside_and_across_read_blocks(monkeypatch, block):
    monkeypatch.setattr(jsonl, "_BLOCK", block)
    data = b"".join(line(i, pad=i % 50) for i in range(60))
    result = plan(data, max_requests=4, max_bytes=700)
    check_parts(data, result)
    assert len(result.parts) > 10


def test_a_last_line_without_newline_ends_the_last_part():
    data = b"".join(line(i) for i in range(4)).rstrip(b"\n")
    result = plan(data, max_requests=3)
    check_parts(data, result)
    assert slices(data, result)[-1] == line(3).rstrip(b"\n")


def test_more_requests_than_one_batch_takes_are_fine_when_split(monkeypatch, tmp_path):
    monkeypatch.setattr(jsonl, "MAX_LINES", 3)
    monkeypatch.setattr(jsonl, "MAX_FILE_BYTES", 100)
    data = b"".join(line(i) for i in range(8))
    result = plan(data, max_requests=3)
    check_parts(data, result)
    path = tmp_path / "in.jsonl"
    path.write_bytes(data)
    with pytest.raises(InputFileError, match="over the Batch API limit"):
        jsonl.validate_input_file(path)  # unsplit, the same input is refused as before


def test_a_duplicate_id_in_a_later_part_names_its_line():
    rows = [line(i) for i in range(9)]
    rows[7] = line(7, custom_id="r00001")
    with pytest.raises(InputFileError, match=r"line 8: 'custom_id' 'r00001' is used twice"):
        plan(b"".join(rows), max_requests=3)


def test_a_line_over_the_request_size_limit(monkeypatch):
    monkeypatch.setattr(jsonl, "MAX_LINE_BYTES", 200)
    data = line(0) + line(1, pad=300) + line(2)
    with pytest.raises(InputFileError, match=r"line 2: line is over the 200-byte limit"):
        plan(data, max_requests=1)


def test_a_line_no_part_can_hold():
    data = line(0) + line(1, pad=500) + line(2)
    with pytest.raises(InputFileError, match=r"line 2: line is \d+ bytes, over max_bytes_per_batch=300"):
        plan(data, max_bytes=300)


def test_a_line_of_exactly_the_byte_limit_is_a_part_alone():
    big = line(1, pad=500)
    data = line(0) + big + line(2)
    result = plan(data, max_bytes=len(big))
    check_parts(data, result)
    assert [p.lines for p in result.parts] == [1, 1, 1]


def test_every_rule_still_holds():
    data = line(0) + b'{"custom_id": "r9", "body": {"model": "m"}}\n'
    with pytest.raises(InputFileError, match=r"line 2: 'body.messages' must be a non-empty list"):
        plan(data, max_requests=1)


def test_empty_input_and_a_wrong_size():
    with pytest.raises(InputFileError, match="file is empty"):
        plan(b"")
    data = line(0)
    with pytest.raises(InputFileError, match="changed while being read"):
        plan_split(io.BytesIO(data), name="in.jsonl", size=len(data) + 1)


@pytest.mark.parametrize(
    ("requests", "size", "field"),
    [
        (0, 10, "max_requests_per_batch"),
        (50_001, 10, "max_requests_per_batch"),
        (True, 10, "max_requests_per_batch"),
        (10, 0, "max_bytes_per_batch"),
        (10, 100 * 1024 * 1024 + 1, "max_bytes_per_batch"),
        (10, "5", "max_bytes_per_batch"),
    ],
)
def test_limits_out_of_range_are_refused(requests, size, field):
    with pytest.raises(ValueError, match=f"{field}=.*from 1 to"):
        checked_limits(requests, size)
    assert checked_limits(50_000, 100 * 1024 * 1024) == (50_000, 100 * 1024 * 1024)
