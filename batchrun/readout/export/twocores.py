"""Rows on two cores, for export: a forked worker writes the second half, the command the first.

`write_parts` is the one place that forks for it; JSON Lines and CSV exports (`write_export`)
and the row files of an `hf` export's jobs of text go through it."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from batchrun import secondcore
from batchrun.manifest.keytable import KeyTable
from batchrun.readout.export.formats import write_csv, write_jsonl
from batchrun.readout.export.rows import row_of

R = TypeVar("R")
# What writes some rows as text to a stream: (those rows, the stream, whether they are the
# first) → what it counted of them (pickled, from the worker).
Part = Callable[[Sequence[int], IO[str], bool], R]

# From how many rows an export writes on two cores (`write_parts`): below, a worker costs more
# than it saves.
TWO_CORES_FROM = 20_000
COPY_CHUNK = 1 << 20
# Free space kept beyond the worker's half before it is copied: what the command's own writes
# may still hold in buffers, and a little for the filesystem's own blocks.
COPY_SLACK = 8 << 20


def write_export(
    table: KeyTable,
    rows: Sequence[int],
    handle: IO[str],
    columns: Sequence[str],
    fmt: str,
    spool_in: Path | None = None,
) -> int:
    """The rows of these table rows (`row_of` each record's line) as JSON Lines or CSV
    (`fmt`) with these columns, through `write_parts`; how many."""

    def part(some: Sequence[int], out: IO[str], first: bool) -> int:
        return _write_part(table, some, out, columns, fmt, first=first)

    return sum(write_parts(rows, handle, part, spool_in))


def write_parts(
    rows: Sequence[int], handle: IO[str], part: Part[R], spool_in: Path | None = None
) -> list[R]:
    """`part` of the rows into `handle`, in their order; what each part counted, in order.
    Where the system forks (Linux) and this process has a second core and no thread, a worker
    process writes the second half of the rows to a temporary file (in `spool_in`: the
    destination's folder, not a /tmp that may be memory) while this one writes the first; that
    is copied after it (the same bytes, in the same order, redacted by `handle` as the rest).
    Should the worker not finish, this process writes its half itself (an error in a record
    then shows as it would)."""
    spools = _spools(spool_in) if len(rows) >= TWO_CORES_FROM and secondcore.available() else None
    with secondcore.collector_paused():
        if spools is None:
            return [part(rows, handle, True)]
        spool, counted = spools
        with spool, counted:
            return _write_halves(rows, handle, part, spool, counted)


def _write_halves(
    rows: Sequence[int], handle: IO[str], part: Part[R], spool: IO[bytes], counted: IO[bytes]
) -> list[R]:
    half = len(rows) // 2
    with secondcore.forked(lambda: _work(rows[half:], part, spool, counted)) as worker:
        if worker is None:  # no process to spare: this one writes them all
            return [part(rows, handle, True)]
        first = part(rows[:half], handle, True)
        done = worker.wait()
    second = _counted(counted) if done and _room_to_copy(spool) else None
    if second is None:
        # The worker failed (a full disk, an error in a record), or copying its half would
        # need its size again beside the spool: the spool's space is given back, and this
        # process writes that half itself (an error in a record then shows as it would).
        spool.truncate(0)
        return [first, part(rows[half:], handle, False)]
    spool.seek(0)
    _copy_lines(spool, handle)
    return [first, second[0]]


def _counted(counted: IO[bytes]) -> tuple[Any] | None:
    """What the worker's part counted, as it wrote it; None when it wrote nothing whole."""
    found = secondcore.received(counted)
    return found if isinstance(found, tuple) and len(found) == 1 else None


def _room_to_copy(spool: IO[bytes]) -> bool:
    """Whether the spool's filesystem (the destination's, or the temporary folder's for stdout)
    has room for the spool's bytes again: the copy writes them while the spool still holds
    them."""
    try:
        free = os.fstatvfs(spool.fileno())
        size = os.fstat(spool.fileno()).st_size
    except OSError:
        return False
    return free.f_bavail * free.f_frsize >= size + COPY_SLACK


def _spools(folder: Path | None) -> tuple[IO[bytes], IO[bytes]] | None:
    """The worker's two temporary files: its rows' text, and what its part counted."""
    spool = _spool(folder)
    counted = _spool(folder) if spool is not None else None
    if spool is None or counted is None:
        if spool is not None:
            spool.close()
        return None
    return spool, counted


def _spool(folder: Path | None) -> IO[bytes] | None:
    try:
        return tempfile.TemporaryFile(dir=folder)
    except OSError:  # a folder that takes no file (a special file's): one process does it all
        return None


def _work(rows: Sequence[int], part: Part[R], spool: IO[bytes], counted: IO[bytes]) -> None:
    """The worker's part: write its rows to `spool` and what it counted to `counted`."""
    with open(spool.fileno(), "w", encoding="utf-8", newline="", closefd=False) as out:
        found = part(rows, out, False)
    pickle.dump((found,), counted)
    counted.flush()


def _write_part(
    table: KeyTable,
    rows: Sequence[int],
    handle: IO[str],
    columns: Sequence[str],
    fmt: str,
    *,
    first: bool,
) -> int:
    made = (row_of(table, at, line) for at, line in table.lines_of(rows))
    if fmt == "jsonl":
        return write_jsonl(made, handle, columns)
    return write_csv(made, handle, columns, header=first)


def _copy_lines(spool: IO[bytes], handle: IO[str]) -> None:
    """The spool's text into `handle`, whole lines a write (a secret spans no line, so each
    write is redacted whole)."""
    rest = b""
    while data := spool.read(COPY_CHUNK):
        data = rest + data
        end = data.rfind(b"\n") + 1
        if end:
            handle.write(data[:end].decode("utf-8"))
        rest = data[end:]
    if rest:
        handle.write(rest.decode("utf-8"))
