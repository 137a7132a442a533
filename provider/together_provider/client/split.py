"""Cutting one input past the Batch API's per-file limits into parts, each a batch of its own.

One streamed pass over the input checks every line with every rule of :mod:`.jsonl` (one set of
custom_ids spans the whole input, so an id of part 3 repeating one of part 1 is caught) and decides
where the parts end. A part is a byte range of the input with its line count and SHA-256: nothing of it
is kept, the upload reads that range again from the source. Memory is the set of ids and one block.
Every error comes out of this pass, before anything is uploaded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import BinaryIO

from together_provider.client import jsonl
from together_provider.client.errors import InputFileError

MAX_REQUESTS_PER_BATCH = jsonl.MAX_LINES
MAX_BYTES_PER_BATCH = jsonl.MAX_FILE_BYTES


@dataclass(frozen=True)
class Part:
    """Lines ``first_line`` to ``first_line + lines - 1`` of the input: ``length`` bytes at ``offset``."""

    number: int  # from 1, in input order
    offset: int
    length: int
    lines: int
    first_line: int
    sha256: str


@dataclass(frozen=True)
class SplitPlan:
    path: str
    lines: int
    bytes: int
    sha256: str  # of the whole input
    parts: tuple[Part, ...]
    models: frozenset[str] = field(default_factory=frozenset)


def checked_limits(max_requests: int, max_bytes: int) -> tuple[int, int]:
    """The per-part limits, refused (ValueError naming the argument) outside what Together takes."""
    for name, value, ceiling in (
        ("max_requests_per_batch", max_requests, MAX_REQUESTS_PER_BATCH),
        ("max_bytes_per_batch", max_bytes, MAX_BYTES_PER_BATCH),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= ceiling:
            raise ValueError(
                f"{name}={value!r}: give a whole number from 1 to {ceiling:,}, the Batch API's limit"
            )
    return max_requests, max_bytes


class _Cutter:
    """Where the parts end, fed the input block by block with each line's end offset."""

    def __init__(self, name: str, max_requests: int, max_bytes: int) -> None:
        self.name = name
        self.max_requests = max_requests
        self.max_bytes = max_bytes
        self.parts: list[Part] = []
        self._offset = 0  # of the current block in the input
        self._start = 0  # of the current part in the input
        self._lines = 0
        self._first_line = 1
        self._digest = hashlib.sha256()

    def feed(self, block: bytes, first_line: int, ends: list[int]) -> None:
        view = memoryview(block)
        hashed = 0  # of the block, into the current part's digest
        line_start = 0
        for index, end in enumerate(ends):
            length = end - line_start
            if length > self.max_bytes:
                raise InputFileError(
                    f"line is {length:,} bytes, over max_bytes_per_batch={self.max_bytes:,}: no part "
                    "can hold it; raise max_bytes_per_batch or shorten the request",
                    path=self.name,
                    line=first_line + index,
                )
            here = self._offset + line_start
            if self._lines and (
                self._lines == self.max_requests or here + length - self._start > self.max_bytes
            ):
                self._digest.update(view[hashed:line_start])
                hashed = line_start
                self._close(here)
                self._first_line = first_line + index
            self._lines += 1
            line_start = end
        self._digest.update(view[hashed:])
        self._offset += len(block)

    def _close(self, end: int) -> None:
        self.parts.append(
            Part(
                number=len(self.parts) + 1,
                offset=self._start,
                length=end - self._start,
                lines=self._lines,
                first_line=self._first_line,
                sha256=self._digest.hexdigest(),
            )
        )
        self._start, self._lines, self._digest = end, 0, hashlib.sha256()

    def finish(self) -> tuple[Part, ...]:
        if self._lines:
            self._close(self._offset)
        return tuple(self.parts)


def plan_split(
    handle: BinaryIO,
    *,
    name: str,
    size: int,
    endpoint: str | None = None,
    max_requests: int = MAX_REQUESTS_PER_BATCH,
    max_bytes: int = MAX_BYTES_PER_BATCH,
) -> SplitPlan:
    """Check every line of the ``size`` bytes of ``handle`` (read once from where it stands) and cut
    them into parts of at most ``max_requests`` lines and ``max_bytes`` bytes, in input order.

    The input as a whole may be past both limits; each part is within them. ``name`` (a path or URL)
    is what errors and the plan show. Raises :class:`InputFileError` naming the line and the rule.
    """
    checked_limits(max_requests, max_bytes)
    jsonl._check_name(name)
    if size == 0:
        raise InputFileError("file is empty; a batch needs at least one request line", path=name)
    digest = hashlib.sha256()
    seen: set[str] = set()
    models: set[str] = set()
    passes = jsonl.line_checker(endpoint)
    cutter = _Cutter(name, max_requests, max_bytes)
    ends: list[int] = []
    lines = read = 0
    for block in jsonl._blocks(handle, digest):
        read += len(block)
        ends.clear()
        first = lines + 1
        lines = jsonl.check_block(
            block, lines, name, endpoint, seen, models, passes, max_lines=None, ends=ends
        )
        cutter.feed(block, first, ends)
    if read != size:
        raise InputFileError(
            f"read {read:,} bytes of a file announced as {size:,}: it changed while being read; "
            "run the task again once its writer has finished",
            path=name,
        )
    return SplitPlan(
        path=name,
        lines=lines,
        bytes=size,
        sha256=digest.hexdigest(),
        parts=cutter.finish(),
        models=frozenset(models),
    )
