"""The landed rows in the format the task was asked for: written to a handle ``storage.atomic_writer``
gives, and read back from ``result_path`` (a repair merges each round into them), JSONL or Parquet alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from together_provider.client.table import PARQUET
from together_provider.tasks import storage

Write = Callable[[dict[str, Any]], None]


def check_format_support(fmt: str) -> None:
    """Fail (ValueError) when this environment cannot write ``fmt``: Parquet without pyarrow."""
    if fmt == PARQUET:
        from together_provider.tasks import parquet

        parquet.check_installed()


@contextmanager
def row_writer(fmt: str, handle: BinaryIO) -> Iterator[Write]:
    """A function writing one row to ``handle`` in ``fmt``; the format's ending (Parquet's last row group
    and footer) is written when the block ends without an error."""
    if fmt != PARQUET:

        def write_line(row: dict[str, Any]) -> None:
            handle.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")

        yield write_line
        return
    from together_provider.tasks.parquet import ParquetRowWriter

    writer = ParquetRowWriter(handle)
    yield writer.write
    writer.close()


@contextmanager
def landed_rows(
    value: Any, fmt: str, *, field: str, columns: Iterable[str] | None = None
) -> Iterator[Iterator[dict[str, Any]]]:
    """The rows landed at ``value``, streamed (a line, or a row group, at a time). ``columns`` lets a
    Parquet read skip what the caller does not need; JSONL rows are always whole."""
    if fmt != PARQUET:
        with storage.read_lines(value, field=field) as lines:
            yield (json.loads(line) for line in lines if line.strip())
        return
    from together_provider.tasks.parquet import iter_rows

    with storage.open_binary(value, field=field) as (handle, where):
        yield iter_rows(handle, where=where, columns=columns)
