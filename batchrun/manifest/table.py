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

import bisect
import hashlib
import itertools
import json
import math
import operator
import os
import re
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from batchrun.api.objects import parse_time
from batchrun.errors import ManifestError
from batchrun.manifest import tablecache
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.reader import (
    Journals,
    KeyState,
    ManifestIndex,
    line_read_back,
    manifest_paths,
    open_journal,
    record_of_line,
    record_read_back,
    supersedes,
)
from batchrun.manifest.records import (
    ALL_STATUSES,
    IN_FLIGHT,
    Api,
    Record,
    Status,
    parse_status,
    spent_of,
)
from batchrun.manifest.state import STATES, State, files_intact, key_state, may_move
from batchrun.planner.naming import JobNamers

H = TypeVar("H", bound=Hashable)

# A timestamp column holds microseconds since the epoch (exact, unlike a float's seconds);
# this stands for "none": no timestamp, one that does not parse, or one without a time zone.
NO_TIME = -(2**63)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
NO_STATE = 255  # the state column of a key no walk of the plan has placed
_STATUS_AT = {status: place for place, status in enumerate(ALL_STATUSES)}
_STATE_AT = {state: place for place, state in enumerate(STATES)}
# Flags of a row (one byte).
_MISSING = 1  # output URLs never downloaded
_NOT_CREATED = 2  # no prediction exists: the key counts as not started
_DUPLICATE = 4  # possible_duplicate
_PRICED = 8  # some prediction of the key has a cost (Record.estimated_cost is not None)
_PLANNED = 16  # the spec as it is now plans the key (set by a walk of the plan)
_NAIVE_CREATED = 32  # its `created_at` has no time zone (the column holds it as if UTC)
_NAIVE_COMPLETED = 64
# How much of a journal one read brings in while records are read back in order: lines close
# together cost one read between them.
READ_WINDOW = 1 << 20
LINE_READ = 1 << 13  # a line read alone: most records are under 8 kB
PARSE_BATCH = 512  # lines read back parsed together (`lines_of`)
# The files (path, size, sha256) of this many keys are kept with the table, so checking them
# (`status`, `plan`: does each succeeded key's file still match?) reads no line again; beyond
# it a key's files are read back from its line. About 300 bytes a file: 100,000 keys of one
# file each hold 30 MB, while a million keys stay within the readers' memory.
FILES_KEPT = 100_000


class Interned(Generic[H]):
    """Values many rows share (job ids, APIs, versions), each kept once, a row holding its
    place."""

    def __init__(self, first: H) -> None:
        self.values: list[H] = [first]
        self._places: dict[H, int] = {first: 0}
        self._last: tuple[H, int] = (first, 0)  # most lines repeat the line before's

    @classmethod
    def of(cls, values: list[H]) -> Interned[H]:
        """Values interned already (a table cache's), in their places."""
        made = cls(values[0])
        made.values = list(values)
        made._places = {value: place for place, value in enumerate(values)}
        return made

    def place(self, value: H) -> int:
        last, place = self._last
        if value is last or value == last:
            return place
        found = self._places.get(value)
        if found is None:
            found = self._places[value] = len(self.values)
            self.values.append(value)
        self._last = (value, found)
        return found


class _Unset:
    """What a row holds for a variable its line does not set (not JSON's null, which is a
    value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


def value_key(raw: Any) -> Hashable:
    """What tells a variable's values apart: their canonical JSON, so `1`, `1.0`, `true` and
    `"1"` are four values, as they are four different inputs to a model. Text and integers
    (most values) are their own key; the rest a tuple, which equals no text and no number."""
    kind = type(raw)
    if kind is str or kind is int:
        itself: Hashable = raw
        return itself
    if isinstance(raw, str):
        return str(raw)
    if isinstance(raw, bool):  # before int: True is an int, and equals 1
        return ("b", raw)
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float):  # 1.0 equals 1: its repr tells them (and -0.0) apart
        return ("f", repr(raw))
    canonical = json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return ("j", canonical)


_INT64 = (-(2**63), 2**63 - 1)
_WIDEST = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}  # the largest place each array holds


class Values:
    """One variable in every row: each distinct value kept once (`raws`, in the order rows
    first show them; place 0 is UNSET, a row that does not set it), and per row its place.

    What is per row is its place (`places`): a byte while the variable has at most 255 values,
    then two bytes, then four. A variable that takes a value of its own in each of a million
    keys (a seed, an index) keeps a million values: while they are all integers, in an array
    of 8 bytes each (`raws` is then an array, its place 0 a stand-in), not as a list of 36-byte
    int objects.
    """

    def __init__(self, rows: int = 0) -> None:
        self.raws: list[Any] | array[int] = array("q", [0])
        self.places: array[int] = array("B", bytes(rows))  # the rows before it appeared
        self._at: dict[Hashable, int] | None = {}  # None: made again when a row comes

    def append(self, raw: Any) -> None:
        """The next row's value (UNSET: the row does not set the variable)."""
        if raw is UNSET:
            self.places.append(0)
            return
        key = value_key(raw)
        at = self._at
        if at is None:  # settled, or read from the table kept on disk: rows appended after
            at = self._at = {value_key(raw): place for place, raw in enumerate(self.raws) if place}
        place = at.get(key)
        if place is None:
            place = at[key] = len(self.raws)
            raws = self.raws
            if type(raws) is array and not (type(raw) is int and _INT64[0] <= raw <= _INT64[1]):
                raws = self.raws = [UNSET, *raws[1:]]  # the first value that is not an int64
            raws.append(raw)
            if place > _WIDEST[self.places.typecode]:
                self.places = array("I" if place > _WIDEST["H"] else "H", self.places)
        self.places.append(place)

    def settle(self) -> None:
        """Every row is in: the lookup from value to place is no longer needed."""
        self._at = None


@dataclass
class KeyTable:
    """The newest line of every key of a run folder's journals, in columns (see the module)."""

    paths: list[Path]
    headers: list[dict[str, Any]] = field(default_factory=list)
    rows: KeyRows = field(default_factory=lambda: KeyRows())  # key → row, first-seen order
    lines: int = 0
    torn_lines: int = 0
    # One entry per row. A key whose line is superseded gets a new row; the old one is left.
    source: array[int] = field(default_factory=lambda: array("H"))
    offset: array[int] = field(default_factory=lambda: array("q"))
    length: array[int] = field(default_factory=lambda: array("I"))
    written: array[int] = field(default_factory=lambda: array("q"))
    status: array[int] = field(default_factory=lambda: array("B"))
    flags: array[int] = field(default_factory=lambda: array("B"))
    job: array[int] = field(default_factory=lambda: array("I"))
    api: array[int] = field(default_factory=lambda: array("I"))
    version: array[int] = field(default_factory=lambda: array("I"))
    template: array[int] = field(default_factory=lambda: array("I"))
    files: array[int] = field(default_factory=lambda: array("I"))
    bytes: array[int] = field(default_factory=lambda: array("q"))
    missing: array[int] = field(default_factory=lambda: array("I"))
    spent: array[float] = field(default_factory=lambda: array("d"))
    # The metrics `plan` learns from (NaN: not a number in the record).
    predict_time: array[float] = field(default_factory=lambda: array("d"))
    input_tokens: array[float] = field(default_factory=lambda: array("d"))
    output_tokens: array[float] = field(default_factory=lambda: array("d"))
    created: array[int] = field(default_factory=lambda: array("q"))  # see NO_TIME, aware()
    completed: array[int] = field(default_factory=lambda: array("q"))
    state: array[int] = field(default_factory=lambda: array("B"))  # NO_STATE until placed
    columns: array[int] = field(default_factory=lambda: array("I"))  # with `variables`
    jobs: Interned[str] = field(default_factory=lambda: Interned(""))
    apis: Interned[Api | None] = field(default_factory=lambda: Interned(None))
    versions: Interned[str | None] = field(default_factory=lambda: Interned(None))
    templates: Interned[str | None] = field(default_factory=lambda: Interned(None))
    names: Interned[tuple[str, ...]] = field(default_factory=lambda: Interned(()))
    # With `variables=True` only: each variable's column, and each row's repeat.
    variables: dict[str, Values] = field(default_factory=dict)
    repeat: Values = field(default_factory=lambda: Values())
    _lines: _Lines | None = field(default=None, repr=False)
    # Row → its files, for the first `files_kept` keys with files (None: every key's).
    checks: dict[int, tuple[tuple[str, int, str], ...]] = field(default_factory=dict)
    files_kept: int | None = FILES_KEPT
    # Per journal, where its lines read end and how many they are (`tablecache.JournalMark`).
    resume_at: list[tuple[int, int]] = field(default_factory=list)
    _apis_at: dict[tuple[object, bool], int] = field(default_factory=dict, repr=False)
    _named: int = field(default=0, repr=False)  # of `names`, those whose variables have columns

    # --- one row's fields ---------------------------------------------------------------

    def status_of(self, row: int) -> Status:
        return ALL_STATUSES[self.status[row]]

    def job_of(self, row: int) -> str:
        return self.jobs.values[self.job[row]]

    def api_of(self, row: int) -> Api | None:
        return self.apis.values[self.api[row]]

    def not_created(self, row: int) -> bool:
        return bool(self.flags[row] & _NOT_CREATED)

    def possible_duplicate(self, row: int) -> bool:
        return bool(self.flags[row] & _DUPLICATE)

    def priced(self, row: int) -> bool:
        return bool(self.flags[row] & _PRICED)

    def planned(self, row: int) -> bool:
        return bool(self.flags[row] & _PLANNED)

    def mark_planned(self, row: int) -> None:
        self.flags[row] |= _PLANNED

    def mark_plan(
        self, planned: Iterable[tuple[int, str]], unrecorded: list[tuple[str, str]]
    ) -> int:
        """Mark the rows of a plan's keys planned (`planned`: each key as the number its hex
        digits spell, and its job, as `plancache.planned_numbers` gives them), add to
        `unrecorded` (key, job) of each key no row records as a prediction (none, or one
        `not_created`), and return how many keys the plan has. A million keys cost a bisection
        each, not a string."""
        flags, row_of = self.flags, self.rows.row_of_number
        count = 0
        for number, job in planned:
            count += 1
            row = row_of(number)
            if row is not None:
                flags[row] |= _PLANNED
                if not flags[row] & _NOT_CREATED:
                    continue
            unrecorded.append((f"{number:016x}", job))
        return count

    def counted_rows(self, planned: bool | None) -> Iterator[int]:
        """Each key's newest row, in first-seen order, that is a prediction (not
        `not_created`); `planned`: only those a walk of the plan marked planned (True) or
        did not (False)."""
        flags = self.flags
        if planned is None:
            return (row for row in self.rows.values() if not flags[row] & _NOT_CREATED)
        wanted = _PLANNED if planned else 0
        mask = _NOT_CREATED | _PLANNED
        return (row for row in self.rows.values() if flags[row] & mask == wanted)

    def state_of(self, row: int) -> State | None:
        """The state a walk of the plan placed the key in (None: not placed)."""
        place = self.state[row]
        return None if place == NO_STATE else STATES[place]

    def place(self, row: int, state: State) -> None:
        self.state[row] = _STATE_AT[state]

    def aware(self, row: int, column: str) -> bool:
        """Whether the row's `created_at` (or `completed_at`) has a time zone, as `status`
        counts only those; a naive one is in its column as if it were UTC."""
        at = self.created if column == "created" else self.completed
        naive = _NAIVE_CREATED if column == "created" else _NAIVE_COMPLETED
        return at[row] != NO_TIME and not self.flags[row] & naive

    def sandbox_of(self, row: int) -> bool | None:
        """Whether the sandbox made it; None for a record written before batchrun kept it."""
        api = self.api_of(row)
        return None if api is None else api.sandbox

    def columns_of(self, row: int) -> tuple[str, ...]:
        """The names of the key's variables, in the order its line gives them (loaded with
        `variables=True`)."""
        return self.names.values[self.columns[row]]

    def vars_of(self, row: int) -> dict[str, Any]:
        """The key's variables, as its line gives them (loaded with `variables=True`; a value
        equal to one an earlier line gave, as JSON, is that line's)."""
        return {name: raw for name, _, raw in self.var_places(row)}

    def var_places(self, row: int) -> Iterator[tuple[str, int, Any]]:
        """(name, place in its column, value) of each of the key's variables, in its line's
        order (loaded with `variables=True`): equal places, equal values."""
        for name in self.names.values[self.columns[row]]:
            values = self.variables[name]
            place = values.places[row]
            yield name, place, values.raws[place]

    def placer(
        self,
        run_dir: Path,
        pinned: Mapping[str, str | None],
        namers: JobNamers | None = None,
        *,
        sandbox: bool = False,
        hashed: HashedFiles | None = None,
        intact: bool | None = None,
    ) -> Callable[[str, int, str], State]:
        """`manifest.state.key_state` for row after row, `place(key, row, job)` (the arguments
        are its own; `pinned` and `namers` by the job that plans the key), asked once per kind
        of row, not once per key.

        Rows alike in every field `key_state` reads but their files (status, missing,
        not_created, API, version, files template, whether it has files) and planned by one
        job get its answer
        for intact files and for broken ones once; each key then costs a look at its files,
        and only when the two answers differ. A key whose files may move (another template)
        is placed alone: that reads its whole record."""
        memo: dict[tuple[int | bool | str, ...], tuple[State, State] | None] = {}
        status, flags, api, version, template, files = (
            self.status,
            self.flags,
            self.api,
            self.version,
            self.template,
            self.files,
        )
        decides = _MISSING | _NOT_CREATED

        def alone(key: str, row: int, job: str) -> State:
            return key_state(
                self.key_state(key, row),
                run_dir,
                pinned.get(job),
                intact=intact,
                namer=namers(job) if namers is not None else None,
                read=lambda: self.record(key),
                sandbox=sandbox,
                hashed=hashed,
            )

        def place(key: str, row: int, job: str) -> State:
            kind = (
                status[row],
                flags[row] & decides,
                api[row],
                version[row],
                template[row],
                files[row] > 0,
                job,
            )
            try:
                answers = memo[kind]
            except KeyError:
                answers = self._answers(key, row, job, run_dir, pinned, namers, sandbox)
                memo[kind] = answers
            if answers is None:
                return alone(key, row, job)
            whole, broken = answers
            if whole is broken:
                return whole
            if intact is not None:
                return whole if intact else broken
            if not files[row]:
                return whole  # no file to look at (what reading its line back would find)
            checks = self.checks.get(row)
            if checks is None:
                checks = self._file_checks(row)
            return whole if files_intact(run_dir, checks, hashed) else broken

        return place

    def _answers(
        self,
        key: str,
        row: int,
        job: str,
        run_dir: Path,
        pinned: Mapping[str, str | None],
        namers: JobNamers | None,
        sandbox: bool,
    ) -> tuple[State, State] | None:
        """What `key_state` says of a kind of row with its files intact and with them not;
        None when its files may move (each key is placed alone, `placer`)."""
        recorded = self.key_state(key, row)
        namer = namers(job) if namers is not None else None
        if namer is not None and may_move(recorded, namer):
            return None
        pin = pinned.get(job)
        return (
            key_state(recorded, run_dir, pin, intact=True, sandbox=sandbox),
            key_state(recorded, run_dir, pin, intact=False, sandbox=sandbox),
        )

    # --- reading records back ------------------------------------------------------------

    def record(self, key: str) -> Record:
        """The full newest record of `key`, read back from its journal."""
        return self.record_at(self.rows[key])

    def record_at(self, row: int) -> Record:
        """The full record of a row, read back from its journal."""
        if self._lines is None:
            self._lines = _Lines(self.paths)  # closed when the process ends
        source = self.source[row]
        raw = self._lines.line(source, self.offset[row], self.length[row])
        return record_read_back(self.paths[source], self.rows.key_of(row), raw)

    def key_state(self, key: str, row: int, *, every_file: bool = False) -> KeyState:
        """What `manifest.state.key_state` needs of the key: its files (kept, or read back)
        only when they are to be checked (a succeeded key's; with `every_file`, any key's)."""
        checks: tuple[tuple[str, int, str], ...] = ()
        succeeded = self.status[row] == _STATUS_AT[Status.SUCCEEDED]
        if self.files[row] and (succeeded or every_file):
            kept = self.checks.get(row)
            checks = kept if kept is not None else self._file_checks(row)
        flags = self.flags[row]
        api = self.apis.values[self.api[row]]
        completed = self.completed[row]
        return KeyState(  # by position: built once per key, so its keywords would show
            ALL_STATUSES[self.status[row]],
            self.jobs.values[self.job[row]],
            None,  # prediction_id: see `TableStates`
            None if completed == NO_TIME or flags & _NAIVE_COMPLETED else completed,
            checks,
            bool(flags & _MISSING),
            self.source[row],
            self.offset[row],
            self.length[row],
            self.written[row],
            self.versions.values[self.version[row]],
            self.templates.values[self.template[row]],
            None if api is None else api.sandbox,
            bool(flags & _NOT_CREATED),
            self.spent[row],
        )

    def _file_checks(self, row: int) -> tuple[tuple[str, int, str], ...]:
        return _checks(self._line_of(row).get("files") or ())

    def prediction_id_of(self, row: int) -> str | None:
        """The row's prediction id, read back from its journal."""
        found = self._line_of(row).get("prediction_id")
        return found if isinstance(found, str) else None

    def _line_of(self, row: int) -> dict[str, Any]:
        """The object of a row's line, read back (checked to be the row's key's)."""
        if self._lines is None:
            self._lines = _Lines(self.paths)  # closed when the process ends
        source = self.source[row]
        raw = self._lines.line(source, self.offset[row], self.length[row])
        return line_read_back(self.paths[source], self.rows.key_of(row), raw)

    def lines_of(self, rows: Iterable[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """(row, the object of its line) of `rows`, in the order given, each line read back
        from its journal (checked to be the row's key's) one at a time: nothing is kept. What
        a reader that shows a few fields of every record reads; `records` makes each whole."""
        paths, source_of, offset_of, length_of = self.paths, self.source, self.offset, self.length
        key_of = self.rows.key_of
        rows = iter(rows)
        with _Lines(paths) as lines:
            read = lines.line
            while batch := list(itertools.islice(rows, PARSE_BATCH)):
                raws = [read(source_of[row], offset_of[row], length_of[row]) for row in batch]
                parsed = _parse_together(raws)
                for row, raw, data in zip(batch, raws, parsed, strict=True):
                    key = key_of(row)
                    found = data.get("key") if type(data) is dict else None
                    if found is None or str(found) != key:  # as `line_read_back` finds it
                        data = line_read_back(paths[source_of[row]], key, raw)
                    yield row, data

    def records(self, rows: Iterable[int]) -> Iterator[Record]:
        """The full records of `rows`, in the order given (`lines_of`)."""
        for row, line in self.lines_of(rows):
            yield self.record_of(row, line)

    def record_of(self, row: int, line: dict[str, Any]) -> Record:
        """The full record of a row's line (`lines_of`)."""
        return record_of_line(self.paths[self.source[row]], self.rows.key_of(row), line)


def _parse_together(raws: list[bytes]) -> list[Any]:
    """Each line's JSON value, the lines parsed as one array: one call, and each field name
    made once for all of them. Where that does not give one value a line (a line that is not
    one value, or does not parse), None for each, for `line_read_back` to read alone."""
    try:
        parsed = json.loads(b"[" + b",".join(raws) + b"]")
    except ValueError:
        return [None] * len(raws)
    return parsed if len(parsed) == len(raws) else [None] * len(raws)


class _Lines:
    """Lines of journals read back by offset: a window of each journal is kept, so lines read
    in the order they were written cost one read per `READ_WINDOW`; one far away costs one."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.handles: dict[int, int] = {}
        self.windows: dict[int, tuple[int, bytes]] = {}

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self.handles.values():
            os.close(handle)

    def line(self, source: int, offset: int, length: int) -> bytes:
        """The `length` bytes of the line at `offset` of journal `source`."""
        start, data = self.windows.get(source, (0, b""))
        at = offset - start
        if at >= 0 and at + length <= len(data):
            return data[at : at + length]
        ahead = start <= offset < start + len(data) + READ_WINDOW
        # Reading on (the next lines, in the order they were written): a new window. A line
        # far away (a retry's, written later) is read alone, and the window stays.
        size = max(length, READ_WINDOW if ahead or not data else LINE_READ)
        data = self._read(source, offset, size)
        if ahead or source not in self.windows:
            self.windows[source] = (offset, data)
        return data[:length]

    def _read(self, source: int, offset: int, size: int) -> bytes:
        handle = self.handles.get(source)
        if handle is None:
            try:
                handle = self.handles[source] = os.open(self.paths[source], os.O_RDONLY)
            except OSError as error:
                path = self.paths[source]
                raise ManifestError(f"cannot read {path} again: {error.strerror}") from None
        return os.pread(handle, size, offset)


class KeyRows(Mapping[str, int]):
    """Key → the row of its newest line, iterated in the order keys were first recorded.

    Not a dict: a dict of a million 16-hex-digit keys holds a string, an entry and a row
    number object per key, about 180 bytes; here a key is the 8-byte number its hex digits
    spell, in sorted arrays searched by bisection (a key batchrun did not make, from an edited
    manifest, is kept as it is, in a dict of its own).
    """

    def __init__(self) -> None:
        self.numbers: array[int] = array("Q")  # each row's key, as a number (0: an odd key)
        self._sorted: array[int] = array("Q")  # the keys' numbers, ascending
        self._starts: array[int] | None = None  # where each run of 16 top bits starts in it
        self._rows: array[int] = array("I")  # the newest row of each, in the same order
        self._order: array[int] = array("I")  # the newest rows, keys in first-seen order
        self._odd: dict[str, int] = {}  # a key batchrun does not make → its newest row
        self._odd_key: dict[int, str] = {}  # and back, for every row of one

    def add(self, key: str) -> None:
        """The key of the next row (the line just read)."""
        if _HEX_KEY.fullmatch(key):
            self.numbers.append(int(key, 16))
        else:
            self._odd_key[len(self.numbers)] = key
            self.numbers.append(0)

    def settle(self, wins: Callable[[int, int], bool]) -> None:
        """Each key's newest row (`wins(known, row)`: the later row supersedes), and the
        first-seen order, once every line is read."""
        numbers, odd = self.numbers, self._odd_key
        self._sorted, self._rows, self._odd, self._starts = array("Q"), array("I"), {}, None
        first_seen = array("i", [-1]) * len(numbers)  # first row of a key → its newest row
        order = sorted((r for r in range(len(numbers)) if r not in odd), key=numbers.__getitem__)
        at = 0
        while at < len(order):
            first = newest = order[at]
            number = numbers[first]
            at += 1
            while at < len(order) and numbers[order[at]] == number:
                if wins(newest, order[at]):
                    newest = order[at]
                at += 1
            self._sorted.append(number)
            self._rows.append(newest)
            first_seen[first] = newest
        del order
        firsts: dict[str, int] = {}
        for row, key in odd.items():
            first = firsts.setdefault(key, row)
            known = self._odd.get(key)
            self._odd[key] = row if known is None or wins(known, row) else known
            first_seen[first] = self._odd[key]
        self._order = array("I", (row for row in first_seen if row >= 0))

    def restore(
        self, arrays: Mapping[str, array[int]], odd: Any, odd_rows: Any, count: int
    ) -> bool:
        """Take the rows a table cache kept (settled, for `count` rows); False when they do
        not hold together (an index out of bounds, keys out of order), and nothing is taken."""
        numbers, ordered, rows, order = (
            arrays["numbers"],
            arrays["_sorted"],
            arrays["_rows"],
            arrays["_order"],
        )
        if not isinstance(odd, dict) or not isinstance(odd_rows, list):
            return False
        odd_key = {}
        for row, key in odd_rows:
            if type(row) is not int or not 0 <= row < count or type(key) is not str:
                return False
            odd_key[row] = key
        if not all(type(row) is int and 0 <= row < count for row in odd.values()):
            return False
        if len(numbers) != count or len(ordered) != len(rows):
            return False
        if len(order) != len(rows) + len(odd) or (order and max(order) >= count):
            return False
        if rows and max(rows) >= count:
            return False
        if not all(map(operator.lt, ordered, itertools.islice(ordered, 1, None))):
            return False
        if not all(map(operator.eq, map(numbers.__getitem__, rows), ordered)):
            return False
        self.numbers, self._sorted, self._rows, self._order = numbers, ordered, rows, order
        self._starts = None
        self._odd, self._odd_key = dict(odd), odd_key
        return True

    def key_of(self, row: int) -> str:
        odd = self._odd_key.get(row)
        return odd if odd is not None else f"{self.numbers[row]:016x}"

    def get(self, key: str, default: Any = None) -> Any:
        if self._odd and key in self._odd:
            return self._odd[key]
        if not _HEX_KEY.fullmatch(key):
            return default
        row = self.row_of_number(int(key, 16))
        return default if row is None else row

    def row_of_number(self, number: int) -> int | None:
        """The newest row of the key whose 16 hex digits spell `number`; None: no such key.

        Bisection in an array makes a Python int of each number it compares (20 for a
        million keys): first the keys whose top 16 bits are the number's are found (the
        first time, where each such run starts), then only they are bisected."""
        starts = self._starts
        if starts is None:
            ordered = self._sorted
            starts = array("I", (bisect.bisect_left(ordered, top << 48) for top in range(1 << 16)))
            starts.append(len(ordered))
            self._starts = starts
        top = number >> 48
        ordered = self._sorted
        place = bisect.bisect_left(ordered, number, starts[top], starts[top + 1])
        if place < len(ordered) and ordered[place] == number:
            return self._rows[place]
        return None

    def __getitem__(self, key: str) -> int:
        row: int | None = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[str]:
        return (self.key_of(row) for row in self._order)

    def values(self) -> Iterator[int]:  # type: ignore[override]
        return iter(self._order)

    def items(self) -> Iterator[tuple[str, int]]:  # type: ignore[override]
        return ((self.key_of(row), row) for row in self._order)


# The keys batchrun makes (planner/keys.py): 16 lowercase hex digits, kept as numbers.
_HEX_KEY = re.compile(r"[0-9a-f]{16}")


def load_table(
    run_dir: Path,
    *,
    variables: bool = False,
    files_kept: int | None = FILES_KEPT,
    save: bool = False,
    prove: bool = False,
) -> KeyTable:
    """Read every journal of a run folder into a `KeyTable`: a row per line, then each key's
    newest (`reader.supersedes`). `variables`: also keep each key's variables
    (`KeyTable.variables`) and repeat, and the names of its variables (`columns_of`), shared
    between keys. `files_kept`: how many keys' files the table keeps (None: every key's;
    beyond, they are read back when checked).

    The table kept on disk (`manifest/tablecache.py`) stands for the lines it read when the
    journals are still those it read: only the lines appended since are parsed. `save`: write
    it anew when lines were parsed (the commands that write the files' stat index do, and the
    report and export). With `variables`, it is taken only when it keeps them too (the report
    or export wrote it). `prove`: take it only when
    every journal's bytes it was parsed from hash as they did then (`verify`, whose word is a
    proof: the cache's other checks look at each journal's identity and ends, not every byte);
    else read every line."""
    columns = _variable_names if variables else None
    paths = manifest_paths(run_dir)
    handles: list[BinaryIO] = []
    try:
        for path in paths:
            handles.append(open_journal(path))
        found = None
        if paths:
            found = _from_cache(run_dir, paths, handles, files_kept, prove, variables)
        cached = found is not None
        table, pieces = found or (KeyTable(paths=paths, files_kept=files_kept), [()] * len(paths))
        starts = table.resume_at if cached else None
        digests = [hashlib.sha256() for _ in paths]  # of the lines this read parses
        journals = Journals(paths, handles=handles, starts=starts, digests=digests)
        for source, offset, length, data, written in journals:
            key = str(data["key"])
            try:
                _append(table, data, source, offset, length, written, columns)
                if variables:
                    _keep_variables(table, data)
            except (KeyError, TypeError, ValueError):
                path = table.paths[source]
                raise ManifestError(f"{path}: a malformed record for key {key!r}") from None
            table.rows.add(key)
        for column in (*table.variables.values(), table.repeat):
            column.settle()  # before `settle` below sorts the keys: the lookups' memory is free
        parsed = journals.lines > 0 or not cached
        if parsed:

            def wins(known: int, row: int) -> bool:
                return supersedes(
                    (table.source[known], table.written[known]),
                    table.source[row],
                    table.written[row],
                )

            table.rows.settle(wins)
            table.headers += journals.headers
        table.lines, table.torn_lines = len(table.status), journals.torn
        table.resume_at = list(zip(journals.ends, journals.lines_before, strict=True))
        if save and paths and (parsed or table.resume_at != starts):
            # Marked through the handles read: a journal compacted since is not this one.
            begun = starts or [(0, 0)] * len(paths)
            pieces = [
                tablecache.pieces_after(known, start, end, digest.hexdigest())
                for known, (start, _), end, digest in zip(
                    pieces, begun, journals.ends, digests, strict=True
                )
            ]
            _to_cache(run_dir, table, paths, handles, pieces, variables)
    finally:
        for handle in handles:
            handle.close()
    return table


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


# The table's columns a cache keeps, with their typecodes (`state` is set by each walk).
_ROW_COLUMNS = (
    ("source", "H"),
    ("offset", "q"),
    ("length", "I"),
    ("written", "q"),
    ("status", "B"),
    ("flags", "B"),
    ("job", "I"),
    ("api", "I"),
    ("version", "I"),
    ("template", "I"),
    ("files", "I"),
    ("bytes", "q"),
    ("missing", "I"),
    ("spent", "d"),
    ("predict_time", "d"),
    ("input_tokens", "d"),
    ("output_tokens", "d"),
    ("created", "q"),
    ("completed", "q"),
)
_KEY_COLUMNS = (("numbers", "Q"), ("_sorted", "Q"), ("_rows", "I"), ("_order", "I"))
_CHECK_COLUMNS = (("check_rows", "I"), ("check_sizes", "q"))
_TYPECODES = dict(_ROW_COLUMNS + _KEY_COLUMNS + _CHECK_COLUMNS)


def _to_cache(
    run_dir: Path,
    table: KeyTable,
    paths: list[Path],
    handles: list[BinaryIO],
    pieces: list[_Pieces],
    variables: bool,
) -> None:
    """Keep the table on disk for the next reader (see `manifest/tablecache.py`), with the
    digest of each journal's bytes it was parsed from (`pieces`), and its `variables` if it
    has them."""
    try:
        marks = [
            tablecache.mark(path, handle, end, lines, digest)
            for path, handle, (end, lines), digest in zip(
                paths, handles, table.resume_at, pieces, strict=True
            )
        ]
    except OSError:
        return
    rows = table.rows
    arrays = {name: getattr(table, name) for name, _ in _ROW_COLUMNS}
    arrays.update({name: getattr(rows, name) for name, _ in _KEY_COLUMNS})
    meta = {
        "headers": table.headers,
        "jobs": table.jobs.values,
        "apis": [None if api is None else [api.url, api.sandbox] for api in table.apis.values],
        "versions": table.versions.values,
        "templates": table.templates.values,
        "odd": rows._odd,
        "odd_rows": [[row, key] for row, key in rows._odd_key.items()],
        # The kept files in columns, a file a place: one list of each is parsed at C speed.
        "check_paths": [path for files in table.checks.values() for path, _, _ in files],
        "check_shas": [sha256 for files in table.checks.values() for _, _, sha256 in files],
    }
    arrays["check_rows"] = array("I", (row for row, files in table.checks.items() for _ in files))
    arrays["check_sizes"] = array(
        "q", (size for files in table.checks.values() for _, size, _ in files)
    )
    if variables:
        arrays.update(_variables_to_cache(table))
    tablecache.write(run_dir, meta, marks, arrays)


_Pieces = tuple[tuple[int, str], ...]  # a journal's digest (`tablecache.JournalMark.pieces`)


def _from_cache(
    run_dir: Path,
    paths: list[Path],
    handles: list[BinaryIO],
    files_kept: int | None,
    prove: bool,
    variables: bool,
) -> tuple[KeyTable, list[_Pieces]] | None:
    """The table the cache holds, if it describes these journals (as far as they were read
    then: `prove`, every byte hashed again) and every number in it is within its bounds (with
    its `variables`, if asked), with each journal's digest; None otherwise."""
    journals = sum(os.fstat(handle.fileno()).st_size for handle in handles)
    most = journals * tablecache.CACHE_PER_JOURNAL_BYTE + tablecache.CACHE_SLACK
    cached = tablecache.read(run_dir, _TYPECODES, most, others=variables)
    if cached is None or len(cached.journals) != len(paths):
        return None
    matches = tablecache.proved if prove else tablecache.still
    for known, path, handle in zip(cached.journals, paths, handles, strict=True):
        if not known.end or not matches(known, path, handle):
            return None
    try:
        table = _cached_table(cached, paths, files_kept)
        if table is not None and variables and not _cached_variables(table, cached.arrays):
            return None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None
    return None if table is None else (table, [known.pieces for known in cached.journals])


def _cached_table(
    cached: tablecache.Cached, paths: list[Path], files_kept: int | None
) -> KeyTable | None:
    meta, arrays = cached.meta, cached.arrays
    table = KeyTable(paths=paths, files_kept=files_kept)
    count = len(arrays["status"])
    if any(len(arrays[name]) != count for name, _ in _ROW_COLUMNS):
        return None
    jobs = _strings(meta["jobs"], none=False)
    versions = _strings(meta["versions"], none=True)
    templates = _strings(meta["templates"], none=True)
    apis = [_api(item) for item in meta["apis"]]
    headers = meta["headers"]
    if not (jobs and versions and templates and apis and isinstance(headers, list)):
        return None
    if not all(isinstance(header, dict) for header in headers):
        return None
    bounds = {
        "status": len(ALL_STATUSES),
        "job": len(jobs),
        "api": len(apis),
        "version": len(versions),
        "template": len(templates),
        "source": len(paths),
    }
    if count and any(max(arrays[name]) >= bound for name, bound in bounds.items()):
        return None
    if count and min(arrays["offset"]) < 0:
        return None
    for name, _ in _ROW_COLUMNS:
        setattr(table, name, arrays[name])
    table.state = array("B", [NO_STATE]) * count
    table.jobs, table.versions, table.templates = (
        Interned.of(jobs),
        Interned.of(versions),
        Interned.of(templates),
    )
    table.apis = Interned.of(apis)
    table._apis_at = {
        (api.url, api.sandbox): place for place, api in enumerate(apis) if api is not None
    }
    table.headers = headers
    if not table.rows.restore(arrays, meta["odd"], meta["odd_rows"], count):
        return None
    checks = _cached_checks(meta, arrays, count, files_kept)
    if checks is None:
        return None
    table.checks = checks
    table.resume_at = [(known.end, known.lines) for known in cached.journals]
    return table


# The table's variables in the cache: their JSON (names, and each value not in an array) as the
# bytes of one array, read only by a reader that wants them; then the arrays below, by number.
_VARIABLES = "variables"


def _variables_to_cache(table: KeyTable) -> dict[str, array[Any]]:
    """A table's variables (`load_table(variables=True)`) as arrays of the cache: the names of
    each row's variables (`columns`), and per variable (the repeat last) the place of each
    row's value and its values (an array of int64, or a list in the JSON)."""
    arrays: dict[str, array[Any]] = {"columns": table.columns}
    listed: list[list[Any]] = []
    for number, (name, values) in enumerate([*table.variables.items(), (None, table.repeat)]):
        arrays[f"places:{number}"] = values.places
        if isinstance(values.raws, array):
            arrays[f"raws:{number}"] = values.raws
            listed.append([name, None])
        else:
            listed.append([name, [None, *values.raws[1:]]])  # place 0 is UNSET
    found = {"names": table.names.values, "variables": listed}
    arrays[_VARIABLES] = array("B", json.dumps(found, separators=(",", ":")).encode())
    return arrays


def _cached_variables(table: KeyTable, arrays: Mapping[str, array[Any]]) -> bool:
    """Take the variables a cache kept into `table` (loaded from it); False when it kept none
    or they are not what `_variables_to_cache` writes (and nothing is taken)."""
    found = arrays.get(_VARIABLES)
    if found is None:
        return False
    data = json.loads(found.tobytes())
    count = len(table.status)
    names = [tuple(item) for item in data["names"]]
    if not all(type(name) is str for item in names for name in item):
        return False
    columns = arrays["columns"]
    if not names or names[0] != () or columns.typecode != "I" or len(columns) != count:
        return False
    if count and max(columns) >= len(names):
        return False
    listed = data["variables"]
    made: list[tuple[str | None, Values]] = []
    for number, (name, raws) in enumerate(listed):
        values = Values()
        places = arrays[f"places:{number}"]
        if places.typecode not in _WIDEST or len(places) != count:
            return False
        if raws is None:
            raws = arrays[f"raws:{number}"]
            if raws.typecode != "q":
                return False
        elif type(raws) is list:
            raws = [UNSET, *raws[1:]]
        if not raws or (count and max(places) >= len(raws)):
            return False
        values.raws, values.places, values._at = raws, places, None
        made.append((name, values))
    variables = {name: values for name, values in made[:-1] if type(name) is str}
    if not made or made[-1][0] is not None or len(variables) != len(made) - 1:
        return False
    if not all(name in variables for item in names for name in item):
        return False
    table.variables, table.repeat = variables, made[-1][1]
    table.names, table.columns, table._named = Interned.of(names), columns, len(names)
    return True


def _strings(values: Any, *, none: bool) -> list[Any]:
    """A cache's interned strings (`none`: None allowed too); [] when they are not."""
    if not isinstance(values, list) or not values:
        return []
    if all(type(value) is str or (none and value is None) for value in values):
        return values
    return []


def _api(item: Any) -> Api | None:
    if item is None:
        return None
    url, sandbox = item
    if type(url) is not str or type(sandbox) is not bool:
        raise TypeError("an API of the wrong shape")
    return Api(url, sandbox)


def _cached_checks(
    meta: dict[str, Any], arrays: dict[str, array[Any]], count: int, files_kept: int | None
) -> dict[int, tuple[tuple[str, int, str], ...]] | None:
    """The kept files of a cache, row → its (path, size, sha256)s; None when they are not
    what `_to_cache` writes."""
    rows, sizes = arrays["check_rows"], arrays["check_sizes"]
    paths, shas = meta["check_paths"], meta["check_shas"]
    if not (isinstance(paths, list) and isinstance(shas, list)):
        return None
    if not len(rows) == len(sizes) == len(paths) == len(shas):
        return None
    if rows and (max(rows) >= count or set(map(type, paths)) | set(map(type, shas)) != {str}):
        return None
    files = zip(paths, sizes, shas, strict=True)
    if len(set(rows)) == len(rows):  # one file a key, the common case: built at C speed
        checks = dict(zip(rows, zip(files), strict=True))
    else:
        checks = {}
        for row, file in zip(rows, files, strict=True):
            checks[row] = (*checks.get(row, ()), file)
    if files_kept is not None and len(checks) > files_kept:
        checks = dict(itertools.islice(checks.items(), files_kept))
    return checks


def _append(
    table: KeyTable,
    data: dict[str, Any],
    source: int,
    offset: int,
    length: int,
    written: int,
    columns: Callable[[dict[str, Any]], tuple[str, ...]] | None,
) -> int:
    """One line as a new row. Malformed where `Record.from_json` would find it so (KeyError,
    TypeError, ValueError), so a manifest `status` reads is one `report` reads. Run for every
    line of a journal: each step is the cheapest that keeps `Record.from_json`'s meaning."""
    get = data.get
    status = _STATUS_AT[parse_status(data["status"])]
    job = str(data["job"])
    files = get("files") or ()
    size = 0
    for f in files:  # what FileRecord reads, so a malformed file is found here
        str(f["url"]), str(f["path"]), str(f["sha256"])
        size += int(f["bytes"])
    kept = table.files_kept
    checks = _checks(files) if files and (kept is None or len(table.checks) < kept) else None
    missing = get("missing")
    missing = len(tuple(missing)) if missing else 0
    metrics = get("metrics") or {}
    if type(metrics) is not dict:
        metrics = dict(metrics)
    version = get("version")
    template = get("files_template")
    cost = get("cost")
    spent = spent_of(data)
    created, naive_created = _micros(get("created_at"))
    completed, naive_completed = _micros(get("completed_at"))
    flags = (
        (_MISSING if missing else 0)
        | (_NOT_CREATED if get("not_created") is True else 0)
        | (_DUPLICATE if get("possible_duplicate") else 0)
        | (_PRICED if spent or _is_usd(cost) else 0)
        | (_NAIVE_CREATED if naive_created else 0)
        | (_NAIVE_COMPLETED if naive_completed else 0)
    )
    row = len(table.status)
    if checks is not None:
        table.checks[row] = checks
    table.source.append(source)
    table.offset.append(offset)
    table.length.append(length)
    table.written.append(written)
    table.status.append(status)
    table.flags.append(flags)
    table.job.append(table.jobs.place(job))
    table.api.append(_api_place(table, get("api")))
    table.version.append(table.versions.place(version if isinstance(version, str) else None))
    table.template.append(table.templates.place(template if isinstance(template, str) else None))
    table.files.append(len(files))
    table.bytes.append(size)
    table.missing.append(missing)
    table.spent.append(spent)
    table.predict_time.append(_number(metrics.get("predict_time")))
    table.input_tokens.append(_number(metrics.get("input_token_count")))
    table.output_tokens.append(_number(metrics.get("output_token_count")))
    table.created.append(created)
    table.completed.append(completed)
    table.state.append(NO_STATE)
    if columns is not None:
        table.columns.append(table.names.place(columns(data)))
    return row


def _vars(data: dict[str, Any]) -> dict[str, Any]:
    """A line's variables as `Record.from_json` reads them (TypeError, ValueError: malformed)."""
    found = data.get("vars") or {}
    return found if type(found) is dict else dict(found)


def _variable_names(data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(_vars(data))


def _keep_variables(table: KeyTable, data: dict[str, Any]) -> None:
    """The line's variables and repeat, in the row `_append` just added (and its `columns`,
    the names of its variables: a new set of names may bring a variable no line had)."""
    found = _vars(data)
    table.repeat.append(int(data.get("repeat") or 0))
    if len(table.names.values) > table._named:  # names as no line before: maybe a new one
        row = len(table.repeat.places) - 1
        for name in found:
            if name not in table.variables:
                table.variables[name] = Values(row)
        table._named = len(table.names.values)
    for name, column in table.variables.items():
        column.append(found.get(name, UNSET))


def _checks(files: Iterable[Any]) -> tuple[tuple[str, int, str], ...]:
    """A record line's files as `manifest.state.key_state` checks them (as `FileRecord` reads
    them: KeyError, TypeError or ValueError when malformed)."""
    return tuple((str(f["path"]), int(f["bytes"]), str(f["sha256"])) for f in files)


def _api_place(table: KeyTable, data: object) -> int:
    """`Api.from_json` interned, without building an Api for each line."""
    if not isinstance(data, Mapping) or not isinstance(data.get("url"), str):
        return 0  # None: the origin is unknown
    said = (data["url"], data.get("sandbox") is True)
    place = table._apis_at.get(said)
    if place is None:
        place = table._apis_at[said] = table.apis.place(Api.from_json(data))
    return place


def _is_usd(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _micros(text: Any) -> tuple[int, bool]:
    """A timestamp as microseconds since the epoch (NO_TIME: none), and whether it was naive
    (no time zone: counted as if UTC)."""
    moment = parse_time(text)
    if moment is None:
        return NO_TIME, False
    if moment.tzinfo is None:
        return (moment.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND, True
    return (moment - _EPOCH) // _MICROSECOND, False
