"""The table's lines parsed on two cores: a forked worker parses the second half.

A first read of a million keys parses 800 MB of journal lines, a `json.loads` and a row each
(about 17 CPU seconds); no per-line saving is left on one core. Where there are more than
TWO_CORES_FROM bytes of lines to parse and a second core to take them (`secondcore`), the
lines are split in two at a line's start (`split_point`): this process parses the first half,
a worker forked for it the second, into a table of its own, which it sends back as its arrays'
bytes (through a temporary file: no copy of them in a pickle) with the few values its rows
share; this process then places those values among its own (jobs, APIs, versions, templates,
variables' names and values) and appends the worker's rows after its own. The table is the one
a single process makes, row for row (`tests/manifest/test_twoparse.py`).

What each process parses, it hashes (`reader.iter_journal`): a journal split in two has two
pieces of digest, each of the bytes one process parsed (`tablecache.JournalMark.pieces`), so
`verify`'s proof holds as before. A malformed line in the worker's half is the same error, with
the same line number (the worker counts the lines before its start), raised here once the first
half is parsed (so the first malformed line of the folder is the one named, as on one core). A
worker that dies, or fails otherwise, leaves its half to this process.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from array import array
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, TypeVar

from batchrun import secondcore
from batchrun.errors import ManifestError
from batchrun.manifest import tablerow
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.reader import Journals
from batchrun.manifest.records import MALFORMED
from batchrun.manifest.tablevalues import Interned, Values

# From how many bytes of lines a table's parse takes a second core. A line is about 800
# bytes and 17 µs to parse; 32 MB is about 40,000 lines, 0.7 s on one core, of which the
# worker saves about half, while forking it, sending its rows back and merging them costs a
# few hundredths of a second.
TWO_CORES_FROM = 32 << 20
SEEK_LINE = 1 << 16  # bytes read at a time looking for the line the split begins with
COUNT_READ = 1 << 20  # bytes read at a time counting the lines before the worker's half
# Every per-row array of a `KeyTable`, as the worker sends them back; the four whose values
# are interned, by the `Interned` of their values.
ROW_ARRAYS = (
    "source",
    "offset",
    "length",
    "written",
    "status",
    "flags",
    "job",
    "api",
    "version",
    "template",
    "files",
    "bytes",
    "missing",
    "spent",
    "predict_time",
    "input_tokens",
    "output_tokens",
    "created",
    "completed",
    "state",
    "columns",
)
INTERNED = {
    "job": "jobs",
    "api": "apis",
    "version": "versions",
    "template": "templates",
    "columns": "names",
}

Columns = Callable[[dict[str, Any]], tuple[str, ...]] | None
H = TypeVar("H", bound=Hashable)


@dataclass
class Parsed:
    """What a parse read besides its rows: as `reader.Journals` counts them, and per journal
    the digests of the stretches of lines parsed, (where each ends, its sha256), in order."""

    headers: list[dict[str, Any]]
    lines: int
    torn: int
    ends: list[int]
    lines_before: list[int]
    hashed: list[list[tuple[int, str]]]


def parse(
    table: KeyTable,
    handles: list[BinaryIO],
    starts: list[tuple[int, int]] | None,
    variables: bool,
) -> Parsed:
    """Every line of the table's journals (open as `handles`) from `starts` (per journal,
    offset and lines before; None: from the start) as rows of `table`, on two cores where that
    pays; the rows' variables too with `variables`. Rows' keys not yet settled."""
    begun = starts or [(0, 0)] * len(handles)
    split = split_point(handles, begun) if secondcore.available() else None
    spool = _spool(table.paths[split[0]].parent) if split is not None else None
    if split is None or spool is None:
        return _one_core(table, handles, starts, variables)
    paths = table.paths
    digests = [hashlib.sha256() for _ in paths]
    with spool:
        work = _worker(paths, handles, begun, split, table.files_kept, variables, spool)
        with secondcore.forked(work) as worker:
            if worker is None:  # no process to spare: this one parses them all
                return _one_core(table, handles, starts, variables)
            mine = Journals(paths, handles=handles, starts=starts, digests=digests, stop=split)
            rows_from(table, mine, variables)
            done = worker.wait()
        theirs = _sent(spool) if done else None
        if theirs is None:  # the worker failed: this process parses its half
            return _rest_here(table, handles, begun, split, mine, digests, variables)
        if isinstance(theirs, str):  # a malformed line in its half, after none in this one
            raise ManifestError(theirs)
        return _merge(table, mine, digests, split[0], theirs, spool)


def _one_core(
    table: KeyTable,
    handles: list[BinaryIO],
    starts: list[tuple[int, int]] | None,
    variables: bool,
) -> Parsed:
    digests = [hashlib.sha256() for _ in handles]
    journals = Journals(table.paths, handles=handles, starts=starts, digests=digests)
    rows_from(table, journals, variables)
    hashed = [[(end, d.hexdigest())] for end, d in zip(journals.ends, digests, strict=True)]
    return _parsed(journals, hashed)


def rows_from(table: KeyTable, journals: Journals, variables: bool) -> None:
    """Each record line of `journals` as a row of `table` (and its variables); its keys added
    (not settled), its variables' columns settled."""
    columns: Columns = tablerow.variable_names if variables else None
    for source, offset, length, data, written in journals:
        key = str(data["key"])
        try:
            tablerow.append(table, data, source, offset, length, written, columns)
            if variables:
                tablerow.keep_variables(table, data)
        except MALFORMED:
            path = table.paths[source]
            raise ManifestError(f"{path}: a malformed record for key {key!r}") from None
        table.rows.add(key)
    for column in (*table.variables.values(), table.repeat):
        column.settle()  # before the keys are settled: the lookups' memory is free


def split_point(handles: list[BinaryIO], begun: list[tuple[int, int]]) -> tuple[int, int] | None:
    """(journal, offset of a line's start) halving the bytes left to parse, the line there
    the second half's first; None below TWO_CORES_FROM bytes, or when no line starts after the
    middle but the last journal's end."""
    sizes = [os.fstat(handle.fileno()).st_size for handle in handles]
    left = [max(0, size - start) for size, (start, _) in zip(sizes, begun, strict=True)]
    if sum(left) < TWO_CORES_FROM:
        return None
    middle = sum(left) // 2
    for journal, handle in enumerate(handles):
        if middle >= left[journal]:
            middle -= left[journal]
            continue
        at = _line_from(handle, begun[journal][0] + middle, sizes[journal])
        if at < sizes[journal]:
            return journal, at
        if journal + 1 < len(handles):  # the journal's end: the next one begins the half
            return journal + 1, begun[journal + 1][0]
        return None
    return None


def _line_from(handle: BinaryIO, at: int, size: int) -> int:
    """The offset of the first line that starts at `at` or after it (`size`: none does)."""
    if at == 0:
        return 0
    fd, at = handle.fileno(), at - 1  # the byte before: a newline there starts a line at `at`
    while at < size:
        read = os.pread(fd, SEEK_LINE, at)
        if not read:
            break
        found = read.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(read)
    return size


def _spool(folder: Path) -> IO[bytes] | None:
    """Where the worker sends its rows (tens of megabytes at a million lines): the run folder,
    beside its journals, as `/tmp` may be held in memory; else the system's temporary folder
    (a folder this process may not write in: a run read, not written)."""
    for where in (folder, None):
        try:
            return tempfile.TemporaryFile(dir=where)
        except OSError:
            continue
    return None  # no temporary file to be had: one process parses it all


def _worker(
    paths: list[Any],
    handles: list[BinaryIO],
    begun: list[tuple[int, int]],
    split: tuple[int, int],
    files_kept: int | None,
    variables: bool,
    spool: IO[bytes],
) -> Callable[[], None]:
    def work() -> None:
        first, at = split
        own = list(handles)
        for journal in range(first, len(handles)):
            own[journal] = _reopened(handles[journal])  # an offset of its own
        start, before = begun[first]
        starts = list(begun)
        starts[first] = (at, before + _lines_between(own[first], start, at))
        digests = [hashlib.sha256() for _ in paths]
        journals = Journals(paths, handles=own, starts=starts, digests=digests, first=first)
        table = KeyTable(paths=paths, files_kept=files_kept)
        try:
            rows_from(table, journals, variables)
        except ManifestError as error:
            pickle.dump(str(error), spool)
        else:
            ends = zip(journals.ends, digests[first:], strict=True)
            _send(table, _parsed(journals, [[(end, d.hexdigest())] for end, d in ends]), spool)
        spool.flush()

    return work


def _reopened(handle: BinaryIO) -> BinaryIO:
    """The journal open as `handle` opened again (the same file, not its name's, which may be
    another by now), so that reading it moves no offset the other process reads by."""
    again = open(f"/proc/self/fd/{handle.fileno()}", "rb")  # noqa: SIM115 (closed on exit)
    known, found = os.fstat(handle.fileno()), os.fstat(again.fileno())
    if (known.st_dev, known.st_ino) != (found.st_dev, found.st_ino):
        raise OSError("the journal opened again is another file")
    return again


def _lines_between(handle: BinaryIO, start: int, end: int) -> int:
    fd, count = handle.fileno(), 0
    while start < end:
        read = os.pread(fd, min(COUNT_READ, end - start), start)
        if not read:
            break
        count += read.count(b"\n")
        start += len(read)
    return count


def _parsed(journals: Journals, hashed: list[list[tuple[int, str]]]) -> Parsed:
    return Parsed(
        journals.headers,
        journals.lines,
        journals.torn,
        journals.ends,
        journals.lines_before,
        hashed,
    )


def _send(table: KeyTable, parsed: Parsed, spool: IO[bytes]) -> None:
    """The worker's table into `spool`: what is not per row (pickled), then each per-row
    array's bytes, then the variables' columns and the kept files (pickled)."""
    shared = {
        "parsed": parsed,
        "interned": {name: getattr(table, name).values for name in INTERNED.values()},
        "arrays": [(name, len(getattr(table, name))) for name in ROW_ARRAYS],
        "numbers": len(table.rows.numbers),
        "odd_keys": table.rows.odd_keys(),
    }
    pickle.dump(shared, spool, protocol=pickle.HIGHEST_PROTOCOL)
    spool.flush()
    for name in ROW_ARRAYS:
        getattr(table, name).tofile(spool)
    table.rows.numbers.tofile(spool)
    pickle.dump((table.variables, table.repeat), spool, protocol=pickle.HIGHEST_PROTOCOL)
    pickle.dump(table.checks, spool, protocol=pickle.HIGHEST_PROTOCOL)


def _sent(spool: IO[bytes]) -> dict[str, Any] | str | None:
    """What the worker sent first: its shared values, or its error's message; None when it
    wrote nothing whole."""
    found = secondcore.received(spool)
    return found if isinstance(found, dict | str) else None


def _rest_here(
    table: KeyTable,
    handles: list[BinaryIO],
    begun: list[tuple[int, int]],
    split: tuple[int, int],
    mine: Journals,
    digests: Sequence[Any],
    variables: bool,
) -> Parsed:
    """The worker's half parsed here, after this process's (each journal's digest goes on
    from where this process's half left it: one stretch, as on one core)."""
    first, at = split
    starts = list(begun)
    starts[first] = (at, mine.lines_before[first])
    rest = Journals(table.paths, handles=handles, starts=starts, digests=digests, first=first)
    rows_from(table, rest, variables)
    ends = mine.ends[:first] + rest.ends
    return Parsed(
        mine.headers + rest.headers,
        mine.lines + rest.lines,
        mine.torn + rest.torn,
        ends,
        mine.lines_before[:first] + rest.lines_before,
        [[(end, digest.hexdigest())] for end, digest in zip(ends, digests, strict=True)],
    )


def _merge(
    table: KeyTable,
    mine: Journals,
    digests: Sequence[Any],
    first: int,
    theirs: dict[str, Any],
    spool: IO[bytes],
) -> Parsed:
    """The worker's rows (read from `spool`) appended after this process's, its values placed
    among these; what the two parses read, together."""
    rows = len(table.status)
    places = {
        name: _placed(getattr(table, name), values) for name, values in theirs["interned"].items()
    }
    for name, count in theirs["arrays"]:
        column = getattr(table, name)
        part = array(column.typecode)
        part.fromfile(spool, count)
        remap = places.get(INTERNED.get(name, ""))
        if remap is not None:
            part = array(column.typecode, map(remap.__getitem__, part))
        column.extend(part)
    numbers = array("Q")
    numbers.fromfile(spool, theirs["numbers"])
    table.rows.extend(numbers, theirs["odd_keys"])
    variables, repeat = pickle.load(spool)
    _merge_variables(table, rows, variables, repeat)
    room = None if table.files_kept is None else table.files_kept - len(table.checks)
    if room is None or room > 0:
        checks = pickle.load(spool)
        for row in list(checks)[:room]:
            table.checks[rows + row] = checks[row]
    parsed: Parsed = theirs["parsed"]
    before = zip(mine.ends[:first], digests[:first], strict=True)
    hashed = [[(end, d.hexdigest())] for end, d in before]
    mine_there = (mine.ends[first], digests[first].hexdigest())
    hashed += [[mine_there, *parsed.hashed[0]], *parsed.hashed[1:]]
    return Parsed(
        mine.headers + parsed.headers,
        mine.lines + parsed.lines,
        mine.torn + parsed.torn,
        mine.ends[:first] + parsed.ends,
        mine.lines_before[:first] + parsed.lines_before,
        hashed,
    )


def _placed(interned: Interned[H], values: list[H]) -> array[int] | None:
    """Where each of the worker's values is among this process's (None: where it was)."""
    places = array("I", map(interned.place, values))
    return None if places == array("I", range(len(places))) else places


def _merge_variables(
    table: KeyTable, rows: int, variables: dict[str, Values], repeat: Values
) -> None:
    """The worker's variables' columns after this process's `rows` rows: a variable only one
    side has is unset in the other's rows."""
    for name in variables:
        if name not in table.variables:
            table.variables[name] = Values(rows)
    theirs = len(repeat.places)
    for name, column in table.variables.items():
        column.extend(variables.get(name) or Values(theirs))
    table.repeat.extend(repeat)
    if len(table.names.values) > 1:  # as `tablerow.keep_variables` counts the names seen
        table._named = len(table.names.values)
