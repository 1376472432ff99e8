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
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
from array import array
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from batchrun.api.objects import parse_time
from batchrun.errors import ManifestError
from batchrun.manifest.reader import Journals, KeyState, manifest_paths, supersedes
from batchrun.manifest.records import (
    ALL_STATUSES,
    Api,
    Record,
    Status,
    parse_status,
    spent_of,
)
from batchrun.manifest.state import STATES, State

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
    columns: array[int] = field(default_factory=lambda: array("I"))  # with `columns=` only
    jobs: Interned[str] = field(default_factory=lambda: Interned(""))
    apis: Interned[Api | None] = field(default_factory=lambda: Interned(None))
    versions: Interned[str | None] = field(default_factory=lambda: Interned(None))
    templates: Interned[str | None] = field(default_factory=lambda: Interned(None))
    names: Interned[tuple[str, ...]] = field(default_factory=lambda: Interned(()))
    _lines: _Lines | None = field(default=None, repr=False)
    # Row → its files, for the first FILES_KEPT keys with files.
    checks: dict[int, tuple[tuple[str, int, str], ...]] = field(default_factory=dict)
    _apis_at: dict[tuple[object, bool], int] = field(default_factory=dict, repr=False)

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
        """The export columns of the key's variables (loaded with `columns=`)."""
        return self.names.values[self.columns[row]]

    # --- reading records back ------------------------------------------------------------

    def record(self, key: str) -> Record:
        """The full newest record of `key`, read back from its journal."""
        return self.record_at(self.rows[key])

    def record_at(self, row: int) -> Record:
        """The full record of a row, read back from its journal."""
        if self._lines is None:
            self._lines = _Lines(self.paths)  # closed when the process ends
        return _parsed(
            self.paths, row, self.source[row], self._lines.line(self.source[row], self.offset[row])
        )

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
        return KeyState(  # by position: built once per key, so its keywords would show
            ALL_STATUSES[self.status[row]],
            self.jobs.values[self.job[row]],
            None,  # prediction_id and completed_at: a reader needs neither
            None,
            checks,
            bool(flags & _MISSING),
            self.source[row],
            self.offset[row],
            0,
            self.written[row],
            self.versions.values[self.version[row]],
            self.templates.values[self.template[row]],
            None if api is None else api.sandbox,
            bool(flags & _NOT_CREATED),
            self.spent[row],
        )

    def _file_checks(self, row: int) -> tuple[tuple[str, int, str], ...]:
        if self._lines is None:
            self._lines = _Lines(self.paths)  # closed when the process ends
        source = self.source[row]
        raw = self._lines.line(source, self.offset[row])
        try:
            return _checks(json.loads(raw).get("files") or ())
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ManifestError(
                f"{self.paths[source]}: cannot read a record again: {error}"
            ) from None

    def records(self, rows: Iterable[int]) -> Iterator[Record]:
        """The full records of `rows`, in the order given, each read back from its journal
        (one at a time: nothing is kept)."""
        with _Lines(self.paths) as lines:
            for row in rows:
                source = self.source[row]
                yield _parsed(self.paths, row, source, lines.line(source, self.offset[row]))


def _parsed(paths: list[Path], row: int, source: int, raw: bytes) -> Record:
    try:
        return Record.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as error:
        raise ManifestError(f"{paths[source]}: cannot read a record again: {error}") from None


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

    def line(self, source: int, offset: int) -> bytes:
        start, data = self.windows.get(source, (0, b""))
        if start <= offset < start + len(data):
            end = data.find(b"\n", offset - start)
            if end >= 0:
                return data[offset - start : end + 1]
        ahead = start <= offset < start + len(data) + READ_WINDOW
        # Reading on (the next lines, in the order they were written): a new window. A line
        # far away (a retry's, written later) is read alone, and the window stays.
        data = self._read(source, offset, READ_WINDOW if ahead or not data else LINE_READ)
        if ahead or source not in self.windows:
            self.windows[source] = (offset, data)
        end = data.find(b"\n")
        return data if end < 0 else data[: end + 1]

    def _read(self, source: int, offset: int, size: int) -> bytes:
        handle = self.handles.get(source)
        if handle is None:
            try:
                handle = self.handles[source] = os.open(self.paths[source], os.O_RDONLY)
            except OSError as error:
                path = self.paths[source]
                raise ManifestError(f"cannot read {path} again: {error.strerror}") from None
        data = os.pread(handle, size, offset)
        while b"\n" not in data:  # a line longer than what was read
            more = os.pread(handle, max(size, len(data)), offset + len(data))
            if not more:
                break
            data += more
        return data


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

    def key_of(self, row: int) -> str:
        odd = self._odd_key.get(row)
        return odd if odd is not None else f"{self.numbers[row]:016x}"

    def get(self, key: str, default: Any = None) -> Any:
        if self._odd and key in self._odd:
            return self._odd[key]
        if not _HEX_KEY.fullmatch(key):
            return default
        number = int(key, 16)
        place = bisect.bisect_left(self._sorted, number)
        if place < len(self._sorted) and self._sorted[place] == number:
            return self._rows[place]
        return default

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
    run_dir: Path, *, columns: Callable[[dict[str, Any]], tuple[str, ...]] | None = None
) -> KeyTable:
    """Read every journal of a run folder into a `KeyTable`: a row per line, then each key's
    newest (`reader.supersedes`). `columns`: also keep, per key, the columns it gives of the
    key's line (the export's variable columns), shared between keys."""
    table = KeyTable(paths=manifest_paths(run_dir))
    journals = Journals(table.paths)
    for source, offset, _, data, written in journals:
        key = str(data["key"])
        try:
            _append(table, data, source, offset, written, columns)
        except (KeyError, TypeError, ValueError):
            path = table.paths[source]
            raise ManifestError(f"{path}: a malformed record for key {key!r}") from None
        table.rows.add(key)

    def wins(known: int, row: int) -> bool:
        return supersedes(
            (table.source[known], table.written[known]), table.source[row], table.written[row]
        )

    table.rows.settle(wins)
    table.headers, table.lines, table.torn_lines = journals.headers, journals.lines, journals.torn
    return table


def _append(
    table: KeyTable,
    data: dict[str, Any],
    source: int,
    offset: int,
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
    checks = _checks(files) if files and len(table.checks) < FILES_KEPT else None
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
