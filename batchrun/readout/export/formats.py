"""Rows as JSON Lines or CSV, to a stream: every column in every row, written in batches."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TypeVar

from batchrun import jsontext
from batchrun.readout import sheet
from batchrun.readout.export.rows import columns_of

T = TypeVar("T")


def write_jsonl(
    rows: Iterable[Mapping[str, Any]], handle: IO[str], columns: Sequence[str] | None = None
) -> int:
    """One JSON object per row, every column in every row (None where a row lacks a variable).
    `columns`: known already (`table_columns`), so the rows may stream; else the rows' own."""
    if columns is None:
        rows = list(rows)
        columns = columns_of(rows)
    count = 0
    for lines in _batches(map(jsonl_line(columns), rows)):
        handle.write("".join(lines))  # one write a batch (each is redacted, a system call)
        count += len(lines)
    return count


# json.dumps(row, ensure_ascii=False)'s text, its encoder made once (json.dumps makes one a
# call); rows read from JSON hold no cycle to look for.
_ROW_JSON = jsontext.encoder()
BATCH = 1000  # rows a write


def jsonl_line(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], str]:
    """A row as its JSON line: every column, in order, None where the row has none."""
    blank = dict.fromkeys(columns)

    def line(row: Mapping[str, Any]) -> str:
        full = blank.copy()
        full.update(row)  # the columns keep their places
        if len(full) != len(blank):  # a column the row has and `columns` not: left out
            full = {column: full[column] for column in columns}
        return _ROW_JSON(full) + "\n"

    return line


def _batches(items: Iterable[T]) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, BATCH)):
        yield batch


def write_csv(
    rows: Iterable[Mapping[str, Any]],
    handle: IO[str],
    columns: Sequence[str] | None = None,
    *,
    header: bool = True,
) -> int:
    """A header and one line per row; nested values (and the list of files, whose paths may
    hold spaces) as JSON. `columns` as for `write_jsonl`; `header`: False for rows that go on
    from rows written before."""
    if columns is None:
        rows = list(rows)
        columns = columns_of(rows)
    lines = (list(map(row.get, columns)) for row in rows)
    return sheet.write_csv(handle, columns if header else None, lines)
