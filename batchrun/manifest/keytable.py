"""The table: per journal line a row of numbers in arrays, per key its newest (`KeyTable`)."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.keyrows import KeyRows
from batchrun.manifest.readback import Lines, parse_together
from batchrun.manifest.reader import KeyState, line_read_back, record_of_line, record_read_back
from batchrun.manifest.records import ALL_STATUSES, Api, Record, Status
from batchrun.manifest.state import STATES, State, files_intact, key_state, may_move
from batchrun.manifest.tablevalues import UNSET, Interned, ReadBack, Values, vars_of_line
from batchrun.manifest.widevalues import Wide
from batchrun.planner.naming import JobNamers

# A timestamp column holds microseconds since the epoch (exact, unlike a float's seconds);
# this stands for "none": no timestamp, one that does not parse, or one without a time zone.
NO_TIME = -(2**63)
NO_STATE = 255  # the state column of a key no walk of the plan has placed
STATUS_AT = {status: place for place, status in enumerate(ALL_STATUSES)}
_STATE_AT = {state: place for place, state in enumerate(STATES)}
# Flags of a row (one byte).
MISSING = 1  # output URLs never downloaded
NOT_CREATED = 2  # no prediction exists: the key counts as not started
DUPLICATE = 4  # possible_duplicate
PRICED = 8  # some prediction of the key has a cost (Record.estimated_cost is not None)
PLANNED = 16  # the spec as it is now plans the key (set by a walk of the plan)
NAIVE_CREATED = 32  # its `created_at` has no time zone (the column holds it as if UTC)
NAIVE_COMPLETED = 64
# The flags of a row that `manifest.state.key_state` reads (with its status, API and files):
# rows alike in these are judged alike.
JUDGED_FLAGS = MISSING | NOT_CREATED
PARSE_BATCH = 512  # lines read back parsed together (`lines_of`)
# The files (path, size, sha256) of this many keys are kept with the table, so checking them
# (`status`, `plan`: does each succeeded key's file still match?) reads no line again; beyond
# it a key's files are read back from its line. About 300 bytes a file: 100,000 keys of one
# file each hold 30 MB, while a million keys stay within the readers' memory.
FILES_KEPT = 100_000
_NO_ROW = 0xFFFFFFFF


@dataclass
class KeyTable:
    """The newest line of every key of a run folder's journals, in columns (see `table.py`)."""

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
    repeat: Values = field(default_factory=lambda: Values(keep_all=True))
    _lines: Lines | None = field(default=None, repr=False)
    # Row → its files, for the first `files_kept` keys with files (None: every key's).
    checks: dict[int, tuple[tuple[str, int, str], ...]] = field(default_factory=dict)
    files_kept: int | None = FILES_KEPT
    # Per journal, where its lines read end and how many they are (`tablecache.JournalMark`).
    resume_at: list[tuple[int, int]] = field(default_factory=list)
    _apis_at: dict[tuple[object, bool], int] = field(default_factory=dict, repr=False)
    _named: int = field(default=0, repr=False)  # of `names`, those whose variables have columns
    _first_rows: dict[str, array[int]] = field(default_factory=dict, repr=False)

    # --- one row's fields ---------------------------------------------------------------

    def status_of(self, row: int) -> Status:
        return ALL_STATUSES[self.status[row]]

    def job_of(self, row: int) -> str:
        return self.jobs.values[self.job[row]]

    def api_of(self, row: int) -> Api | None:
        return self.apis.values[self.api[row]]

    def not_created(self, row: int) -> bool:
        return bool(self.flags[row] & NOT_CREATED)

    def possible_duplicate(self, row: int) -> bool:
        return bool(self.flags[row] & DUPLICATE)

    def priced(self, row: int) -> bool:
        return bool(self.flags[row] & PRICED)

    def planned(self, row: int) -> bool:
        return bool(self.flags[row] & PLANNED)

    def mark_planned(self, row: int) -> None:
        self.flags[row] |= PLANNED

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
                flags[row] |= PLANNED
                if not flags[row] & NOT_CREATED:
                    continue
            unrecorded.append((f"{number:016x}", job))
        return count

    def counted_rows(self, planned: bool | None) -> Iterator[int]:
        """Each key's newest row, in first-seen order, that is a prediction (not
        `not_created`); `planned`: only those a walk of the plan marked planned (True) or
        did not (False)."""
        flags = self.flags
        if planned is None:
            return (row for row in self.rows.values() if not flags[row] & NOT_CREATED)
        wanted = PLANNED if planned else 0
        mask = NOT_CREATED | PLANNED
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
        naive = NAIVE_CREATED if column == "created" else NAIVE_COMPLETED
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
            place = self.variables[name].places[row]
            yield name, place, self.value_at(name, place)

    def value_at(self, name: str, place: int) -> Any:
        """The value at `place` of variable `name`: kept, or (a `Wide` variable's) read back
        from the line of the first row holding it, which is the value a kept one would be."""
        values = self.variables[name]
        if not values.wide:
            return values.kept()[place]
        if not place:
            return UNSET
        return vars_of_line(self._line_of(self.first_rows(name)[place]))[name]

    def raws_of(self, name: str) -> Sequence[Any]:
        """A variable's values by place: those kept, or a `Wide` one's read back when asked."""
        raws = self.variables[name].raws
        if isinstance(raws, Wide):
            return ReadBack(raws, lambda place: self.value_at(name, place))
        return raws

    def first_rows(self, name: str) -> array[int]:
        """Per place of a variable, the first row holding it (made once: 4 bytes a value)."""
        found = self._first_rows.get(name)
        if found is None:
            values = self.variables[name]
            found = self._first_rows[name] = array("I", [_NO_ROW]) * len(values.raws)
            for row, place in enumerate(values.places):
                if found[place] == _NO_ROW:
                    found[place] = row
        return found

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
                flags[row] & JUDGED_FLAGS,
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
            self._lines = Lines(self.paths)  # closed when the process ends
        source = self.source[row]
        raw = self._lines.line(source, self.offset[row], self.length[row])
        return record_read_back(self.paths[source], self.rows.key_of(row), raw)

    def key_state(self, key: str, row: int, *, every_file: bool = False) -> KeyState:
        """What `manifest.state.key_state` needs of the key: its files (kept, or read back)
        only when they are to be checked (a succeeded key's; with `every_file`, any key's)."""
        checks: tuple[tuple[str, int, str], ...] = ()
        succeeded = self.status[row] == STATUS_AT[Status.SUCCEEDED]
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
            None if completed == NO_TIME or flags & NAIVE_COMPLETED else completed,
            checks,
            bool(flags & MISSING),
            self.source[row],
            self.offset[row],
            self.length[row],
            self.written[row],
            self.versions.values[self.version[row]],
            self.templates.values[self.template[row]],
            None if api is None else api.sandbox,
            bool(flags & NOT_CREATED),
            self.spent[row],
        )

    def _file_checks(self, row: int) -> tuple[tuple[str, int, str], ...]:
        return file_checks(self._line_of(row).get("files") or ())

    def prediction_id_of(self, row: int) -> str | None:
        """The row's prediction id, read back from its journal."""
        found = self._line_of(row).get("prediction_id")
        return found if isinstance(found, str) else None

    def _line_of(self, row: int) -> dict[str, Any]:
        """The object of a row's line, read back (checked to be the row's key's)."""
        if self._lines is None:
            self._lines = Lines(self.paths)  # closed when the process ends
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
        with Lines(paths) as lines:
            read = lines.line
            while batch := list(itertools.islice(rows, PARSE_BATCH)):
                raws = [read(source_of[row], offset_of[row], length_of[row]) for row in batch]
                parsed = parse_together(raws)
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


def file_checks(files: Iterable[Any]) -> tuple[tuple[str, int, str], ...]:
    """A record line's files as `manifest.state.key_state` checks them (as `FileRecord` reads
    them: KeyError, TypeError or ValueError when malformed)."""
    return tuple((str(f["path"]), int(f["bytes"]), str(f["sha256"])) for f in files)
