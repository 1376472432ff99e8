"""Every key of a run folder's manifests as one row of a few fixed columns: what readers count.

`status`, `export`, `verify`, `report` and `plan` read a run folder of a million keys. Holding
each key's whole record (inputs, outputs, URLs: 2.5 KB of Python objects) costs gigabytes, so
they read the journals once into this table: per line a row of numbers in arrays (status, job,
API, file count and bytes, cost, predict time, timestamps, where the line is), about 110 bytes,
and per key the number its hex digits spell (`KeyRows`), whose newest row
(`reader.supersedes`) stands for it. What a command prints per key (a CSV row, a failure's
reason) it reads back from the journal, one record at a time and in the table's order
(`records`), so memory stays flat however long the output is.

    table = load_table(run_dir)
    for key, row in table.rows.items(): table.status_of(row), table.job_of(row), ...
    for record in table.records(rows): ...   # the full records of those rows, in that order

With `variables=True` (the report) the table also keeps each key's variables, a column per
variable (`Values`: per row the place of its value among the few the variable takes, 4 bytes),
and its repeat, so the page is laid out without reading every record again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from batchrun.manifest import tablecache, tablestore, twoparse
from batchrun.manifest.keytable import FILES_KEPT, KeyTable
from batchrun.manifest.reader import (
    KeyState,
    ManifestIndex,
    manifest_paths,
    open_journal,
    supersedes,
)
from batchrun.manifest.records import IN_FLIGHT


def load_table(
    run_dir: Path,
    *,
    variables: bool = False,
    files_kept: int | None = FILES_KEPT,
    save: bool = False,
    prove: bool = False,
    variables_if_read: bool = False,
) -> KeyTable:
    """Read every journal of a run folder into a `KeyTable`: a row per line, then each key's
    newest (`reader.supersedes`). `variables`: also keep each key's variables
    (`KeyTable.variables`) and repeat, and the names of its variables (`columns_of`), shared
    between keys. `files_kept`: how many keys' files the table keeps (None: every key's;
    beyond, they are read back when checked).

    The table kept on disk (`manifest/tablecache.py`) stands for the lines it read when the
    journals are still those it read: only the lines appended since are parsed. `save`: write
    it anew when lines were parsed (the commands that write the files' stat index do, and the
    report and export). With `variables`, it is taken only when it keeps them too (the report,
    export or status wrote it). `prove`: take it only when
    every journal's bytes it was parsed from hash as they did then (`verify`, whose word is a
    proof: the cache's other checks look at each journal's identity and ends, not every byte);
    else read every line.

    `variables_if_read`: keep the variables where that costs no more reading (`status`, so
    that the `report` or `export` after it takes its table from disk): when every line is
    read, or when the table on disk keeps them; a table on disk without them is taken as it
    is, and only the lines appended since are read."""
    paths = manifest_paths(run_dir)
    handles: list[BinaryIO] = []
    try:
        for path in paths:
            handles.append(open_journal(path))
        found = None
        if paths:
            wanted = variables or variables_if_read
            found = tablestore.from_cache(run_dir, paths, handles, files_kept, prove, wanted)
            if found is None and variables_if_read and not variables:
                found = tablestore.from_cache(run_dir, paths, handles, files_kept, prove, False)
                variables = found is None  # else taken without them, as it is
            else:
                variables = wanted
        cached = found is not None
        table, pieces = found or (KeyTable(paths=paths, files_kept=files_kept), [()] * len(paths))
        starts = table.resume_at if cached else None
        read = twoparse.parse(table, handles, starts, variables)
        parsed = read.lines > 0 or not cached
        if parsed:

            def wins(known: int, row: int) -> bool:
                return supersedes(
                    (table.source[known], table.written[known]),
                    table.source[row],
                    table.written[row],
                )

            table.rows.settle(wins)
            table.headers += read.headers
        table.lines, table.torn_lines = len(table.status), read.torn
        table.resume_at = list(zip(read.ends, read.lines_before, strict=True))
        if save and paths and (parsed or table.resume_at != starts):
            # Marked through the handles read: a journal compacted since is not this one.
            begun = starts or [(0, 0)] * len(paths)
            pieces = [
                _pieces(known, start, stretches)
                for known, (start, _), stretches in zip(pieces, begun, read.hashed, strict=True)
            ]
            tablestore.to_cache(run_dir, table, paths, handles, pieces, variables)
    finally:
        for handle in handles:
            handle.close()
    return table


def _pieces(
    known: tuple[tuple[int, str], ...], start: int, stretches: list[tuple[int, str]]
) -> tuple[tuple[int, str], ...]:
    """A journal's pieces of digest once the stretches of lines from `start` are parsed (one,
    or two where two processes parsed it: `twoparse.py`), each a piece of its own."""
    for end, digest in stretches:
        known = tablecache.pieces_after(known, start, end, digest)
        start = end
    return known


def load_index(run_dir: Path, *, save: bool = False) -> ManifestIndex:
    """The index a run works from: each key's `KeyState`, drawn from the run folder's table
    when asked (the table kept on disk; `save`: written anew, as `status` keeps it)."""
    table = load_table(run_dir, files_kept=None, save=save)
    newest = table.rows.values()
    return ManifestIndex(
        paths=table.paths,
        headers=table.headers,
        states=TableStates(table),
        lines=table.lines,
        torn_lines=table.torn_lines,
        spent=math.fsum(map(table.spent.__getitem__, newest)),
    )


class TableStates(Mapping[str, KeyState]):
    """Key → its `KeyState`, made from the key's row when asked: a run keeps its table (about
    110 bytes a key), not a KeyState object per key. A key in flight has its prediction id read
    back from its line (there are few: those a stopped run left)."""

    def __init__(self, table: KeyTable) -> None:
        self.table = table

    def get(self, key: str, default: Any = None) -> Any:
        table = self.table
        row = table.rows.get(key)
        if row is None:
            return default
        state = table.key_state(key, row)
        if state.status in IN_FLIGHT:
            state.prediction_id = table.prediction_id_of(row)
        return state

    def __getitem__(self, key: str) -> KeyState:
        state: KeyState | None = self.get(key)
        if state is None:
            raise KeyError(key)
        return state

    def __contains__(self, key: object) -> bool:
        return key in self.table.rows

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.rows)

    def __len__(self) -> int:
        return len(self.table.rows)
