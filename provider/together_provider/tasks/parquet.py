"""The landed rows as a Parquet table (``BatchResultsOperator(result_format="parquet")``), written and read
one row group at a time through pyarrow, the library Airflow's own providers write Parquet with.

pyarrow comes with the ``[parquet]`` extra and is imported inside these functions only, when a task asks
for Parquet: a DAG file that imports the operators never loads it. What goes in each column is
``client/table.py``'s.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from together_provider.client import table

EXTRA = "airflow-provider-together[parquet]"
# The oldest pyarrow the [parquet] extra allows (setup.cfg): the floor Airflow's apache.arrow provider sets.
MIN_PYARROW = (16, 1)
_TYPES = {"string": "string", "int32": "int32", "int64": "int64"}


def _needs(detail: str) -> ValueError:
    return ValueError(
        f"result_format='parquet' needs pyarrow {'.'.join(map(str, MIN_PYARROW))} or later, which {detail}: "
        f"install {EXTRA} wherever DAGs are parsed and tasks run (or give result_format='jsonl')"
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def check_installed() -> None:
    """Refuse Parquet where pyarrow is absent or too old, without importing it (DAG files call this
    through the operator's constructor)."""
    try:
        found = importlib.util.find_spec("pyarrow") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _needs("is not installed here")
    try:
        version = importlib.metadata.version("pyarrow")
    except importlib.metadata.PackageNotFoundError:
        return  # importable without metadata (a vendored copy): the import will tell
    if _version(version) < MIN_PYARROW:
        raise _needs(f"is not ({version} is installed)")


def _pyarrow() -> tuple[Any, Any]:
    """``(pyarrow, pyarrow.parquet)``, or the ValueError naming the extra (the task fails at once)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise _needs(f"could not be imported ({exc})") from None
    if _version(pyarrow.__version__) < MIN_PYARROW:
        raise _needs(f"is not ({pyarrow.__version__} is installed)")
    return pyarrow, pyarrow.parquet


def arrow_schema(pa: Any) -> Any:
    return pa.schema(
        [
            pa.field(
                column.name,
                getattr(pa, _TYPES[column.type])(),
                nullable=column.name not in ("custom_id", "status"),
                metadata={"description": column.description},
            )
            for column in table.COLUMNS
        ]
    )


class ParquetRowWriter:
    """Rows projected into columns and written to ``handle`` (a binary file or store object open for
    writing) a row group at a time: memory holds one row group, whatever the number of rows."""

    def __init__(
        self,
        handle: BinaryIO,
        *,
        rows_per_group: int = table.ROW_GROUP_ROWS,
        bytes_per_group: int = table.ROW_GROUP_BYTES,
    ) -> None:
        self._pa, pq = _pyarrow()
        self._schema = arrow_schema(self._pa)
        self._writer = pq.ParquetWriter(
            handle,
            self._schema,
            use_dictionary=list(table.SMALL_COLUMNS),
            write_statistics=list(table.STATISTICS_COLUMNS),
        )
        self._rows_per_group = rows_per_group
        self._bytes_per_group = bytes_per_group
        self._columns: list[list[Any]] = [[] for _ in table.COLUMNS]
        self._rows = 0
        self._bytes = 0
        self.written = 0

    def write(self, row: dict[str, Any]) -> None:
        values = table.project(row)
        for column, value in zip(self._columns, values, strict=True):
            column.append(value)
        self._rows += 1
        self._bytes += table.text_bytes(values)
        if self._rows >= self._rows_per_group or self._bytes >= self._bytes_per_group:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        arrays = [
            self._pa.array(values, type=field.type)
            for values, field in zip(self._columns, self._schema, strict=True)
        ]
        # Python's copy of the group is dropped before Arrow's is encoded into pages.
        self._columns = [[] for _ in table.COLUMNS]
        self._writer.write_table(self._pa.Table.from_arrays(arrays, schema=self._schema))
        self.written += self._rows
        self._rows = self._bytes = 0

    def close(self) -> None:
        """Write the last row group and the footer (the handle itself stays open: its owner commits it)."""
        self._flush()
        self._writer.close()


def iter_rows(
    handle: BinaryIO, *, where: str, columns: Iterable[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of a table this provider wrote, a row group at a time (``columns``: only those are read,
    and the rows hold only what they give). ``where`` names the file in a refusal."""
    pa, pq = _pyarrow()
    try:
        parquet = pq.ParquetFile(handle)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(
            f"result_path={where!r} is not a Parquet file this provider can read: {exc}"
        ) from None
    wanted = list(columns) if columns is not None else list(table.NAMES)
    absent = [name for name in wanted if name not in parquet.schema_arrow.names]
    if absent:
        raise ValueError(
            f"result_path={where!r} is a Parquet file without the columns {absent} this provider writes; the "
            f"rows landed before the repair round were replaced by another file"
        )
    for group in range(parquet.num_row_groups):
        for values in parquet.read_row_group(group, columns=wanted).to_pylist():
            yield table.row_of(values)
