"""Which variables of a run make the report's rows, columns and sections.

A variable is a key of the records' `vars` (a matrix axis or an include key), or `job`, which
every record has. Its values are told apart by their canonical JSON, so `1`, `1.0`, `true` and
`"1"` are four values, as they are four different inputs to a model.

The default layout, when neither `--rows` nor `--cols` is given:

1. Only variables that vary (two values or more) take part, in the spec's declared axis order,
   then any other variable in the order the records first show it.
2. A variable that the others determine (an include key such as `size: 512` that follows from
   `style: pixel art`) adds no combination, so it is not a dimension: it is shown in each cell's
   caption instead. The spec's declared axes are always dimensions; without the spec, every
   variable is tested, from the last to the first, so of two that determine each other the
   first stays.
3. Rows are the first remaining variable: the slowest axis, the one the spec leads with.
4. Columns are, of the rest, the variable with the most values that still fit across a screen
   (at most 8), since it is what a reader compares side by side; when none fits, the one with
   the fewest values. Whatever is left becomes sections, so the fewer values it has, the fewer
   (and fuller) the sections.
5. With several jobs, `job` is a section, unless at most one variable varies: then jobs are the
   columns, which puts the models side by side for each row of a dataset.

A run may have a million records, so none is held: the layout reads `Placings`, per record a few
numbers (its job's and each variable's place among their values, as `manifest.tablevalues.Values`
keeps them), and a `Value` is made only for what the page shows.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from batchrun.errors import UsageError
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import Record
from batchrun.manifest.tablevalues import UNSET, ReadBack, Values
from batchrun.manifest.widevalues import is_number

JOB = "job"
MISSING_LABEL = "—"
COLS_THAT_FIT = 8
# Whether one variable's values fix another's is asked of each combination of their values: an
# array of them (8 bytes each) while they are at most this many per record (a million keys,
# each its own combination of two axes: 3 × 500,001), else a dict of those the records hold.
DENSE_GROUPS_PER_RECORD = 4


@dataclass(frozen=True, slots=True)
class Value:
    """One value of a variable: `key` is its position among the variable's values (display
    order, which tells values apart within a variable), `raw` what the records hold."""

    key: int
    raw: Any = None
    missing: bool = False  # the records that do not set the variable at all

    @property
    def label(self) -> str:
        """What the page shows; computed when shown, since most values of a big run are not."""
        return MISSING_LABEL if self.missing else label(self.raw)


def label(raw: Any) -> str:
    """How a value reads: text as is, a mapping (a CSV row) as `column: value` pairs."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return " · ".join(f"{key}: {label(value)}" for key, value in raw.items())
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Placings:
    """The records a page counts, by column: for each (by its index, in record order) its
    job's and each variable's place among their values (0: not set), and what orders repeats.

    `names`: every variable in the order the records first show it. `order`: what sorts the
    records of one cell, (repeat, key). `rows`: each record's row of the table it came from.
    """

    count: int
    names: tuple[str, ...]
    columns: dict[str, tuple[Sequence[Any], array[int]]]  # name → (raws, place per record)
    order: Callable[[int], tuple[int, str]]
    rows: array[int]

    @classmethod
    def of_table(cls, table: KeyTable, rows: array[int]) -> Placings:
        """The records of `rows` of a table loaded with `variables=True`."""
        names: dict[str, None] = {}
        for group in dict.fromkeys(map(table.columns.__getitem__, rows)):
            names.update(dict.fromkeys(table.names.values[group]))
        columns: dict[str, tuple[Sequence[Any], array[int]]] = {}
        for name in names:
            places = table.variables[name].places
            columns[name] = (table.raws_of(name), array("I", map(places.__getitem__, rows)))
        # A table's job places start at 0: shifted by one, as 0 means "not set" here.
        jobs = (None, *table.jobs.values)
        columns[JOB] = (jobs, array("I", (table.job[row] + 1 for row in rows)))
        repeats, repeat, key_of = table.repeat.kept(), table.repeat.places, table.rows.key_of

        def order(index: int) -> tuple[int, str]:
            row = rows[index]
            return repeats[repeat[row]], key_of(row)

        return cls(len(rows), tuple(names), columns, order, rows)

    @classmethod
    def of_records(cls, records: Sequence[Record]) -> Placings:
        """The same of records in memory (a few: tests, and small pages)."""
        names: dict[str, None] = {}
        for record in records:
            names.update(dict.fromkeys(record.vars))
        columns: dict[str, tuple[Sequence[Any], array[int]]] = {}
        for name in [*names, JOB]:
            values = Values(keep_all=True)
            for record in records:
                if name == JOB:
                    values.append(record.job)
                else:
                    values.append(record.vars.get(name, UNSET))
            columns[name] = (values.kept(), values.places)

        def order(index: int) -> tuple[int, str]:
            return records[index].repeat, records[index].key

        return cls(len(records), tuple(names), columns, order, array("I", range(len(records))))


class Shown(Sequence[Value]):
    """A variable's values in display order (see `all_values`), and each record's."""

    def __init__(self, raws: Sequence[Any], places: array[int], order: array[int]) -> None:
        self._raws = raws
        self._places = places  # per record
        self._order = order  # places, in display order
        self._position = array("I", bytes(4 * len(raws)))  # place → position
        for position, place in enumerate(order):
            self._position[place] = position

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, position: int) -> Value: ...

    @overload
    def __getitem__(self, position: slice) -> Sequence[Value]: ...

    def __getitem__(self, position: int | slice) -> Value | Sequence[Value]:
        if isinstance(position, slice):
            return [self[at] for at in range(*position.indices(len(self)))]
        if position < 0:
            position += len(self)
        place = self._order[position]
        return Value(position, self._raws[place], missing=place == 0)

    def __iter__(self) -> Iterator[Value]:
        return (self[position] for position in range(len(self)))

    def position_of(self, index: int) -> int:
        """Where the value of record `index` stands among the variable's values."""
        return self._position[self._places[index]]

    def positions(self) -> array[int]:
        """`position_of` every record, in record order."""
        return array("I", map(self._position.__getitem__, self._places))

    def of(self, index: int) -> Value:
        """The value of record `index`."""
        return self[self.position_of(index)]


@dataclass(frozen=True, slots=True)
class Layout:
    """The variables of the grid: rows, columns, sections (outermost first) and captions."""

    rows: str | None
    cols: str | None
    sections: tuple[str, ...]
    captions: tuple[str, ...]
    values: dict[str, Shown]  # each variable's values in display order; job last

    def value(self, name: str, index: int) -> Value:
        """The value of variable `name` in record `index` (of the `Placings` laid out)."""
        return self.values[name].of(index)


def variables(placings: Placings, declared: Sequence[str] = ()) -> list[str]:
    """Every variable the records set: declared axes first, then in order of appearance."""
    seen = set(placings.names)
    names = [name for name in dict.fromkeys(declared) if name in seen and name != JOB]
    names.extend(name for name in placings.names if name not in names)
    return names


def all_values(raws: Sequence[Any], places: array[int]) -> array[int]:
    """A variable's distinct values (as places) in display order: numbers ascending, else
    first seen.

    Numbers are sorted because shards and retries scramble the manifest's order; anything else
    keeps the order the records show it, which is the plan's order. Missing comes last.
    """
    seen = bytearray(len(raws))
    found = array("I")
    for place in places:
        if not seen[place]:
            seen[place] = 1
            found.append(place)
    present = [place for place in found if place]
    if isinstance(raws, ReadBack):  # values not kept: whether each is a number is
        wide = raws.wide
        if present and all(map(wide.numeric.__getitem__, present)):
            present.sort(key=wide.numbers.__getitem__)
    elif present and all(is_number(raws[place]) for place in present):
        present.sort(key=lambda place: float(raws[place]))
    if seen[0]:
        present.append(0)
    return array("I", present)


def _determined(placings: Placings, name: str, by: Sequence[str]) -> bool:
    """True when the values of `by` fix the value of `name` in every record."""
    places = placings.columns[name][1]
    others = [(len(raws), column) for raws, column in (placings.columns[o] for o in by)]
    groups = math.prod(radix for radix, _ in others)
    dense = array("q")  # the place each combination takes (-1: none yet)
    seen: dict[int, int] | None = None
    if groups <= DENSE_GROUPS_PER_RECORD * len(places) + DENSE_GROUPS_PER_RECORD:
        dense = array("q", [-1]) * groups  # not a dict of a million entries (100 MB)
    else:
        seen = {}
    for index, place in enumerate(places):
        group = 0
        for radix, column in others:
            group = group * radix + column[index]
        if seen is not None:
            found = seen.setdefault(group, place)
        else:
            found = dense[group]
            if found < 0:
                dense[group] = found = place
        if found != place:
            return False
    return True


def _pick_cols(names: Sequence[str], values: dict[str, Shown]) -> str | None:
    if not names:
        return None
    fitting = [name for name in names if len(values[name]) <= COLS_THAT_FIT]
    if fitting:
        # max() keeps the first of equals: declared order breaks ties.
        return max(fitting, key=lambda name: len(values[name]))
    return min(names, key=lambda name: len(values[name]))


def choose_layout(
    placings: Placings,
    declared: Sequence[str] = (),
    rows: str | None = None,
    cols: str | None = None,
) -> Layout:
    """The layout for these records; `rows`/`cols` as the user gave them (None: default).

    UsageError for a variable no record has, or the same variable twice.
    """
    names = variables(placings, declared)
    values: dict[str, Shown] = {}
    for name in [*names, JOB]:
        raws, places = placings.columns[name]
        values[name] = Shown(raws, places, all_values(raws, places))
    for option, chosen in (("--rows", rows), ("--cols", cols)):
        if chosen is not None and chosen not in values:
            known = ", ".join([*names, JOB])
            raise UsageError(f"{option} {chosen}: no such variable in this run; it has: {known}")
    if rows is not None and rows == cols:
        raise UsageError(f"--rows and --cols are both {rows}; pick two different variables")
    varying = [name for name in names if len(values[name]) > 1]
    kept = list(varying)
    for name in reversed(varying):
        if name in declared:
            continue  # the spec says it is a dimension, even if this run's rows are too few
        if _determined(placings, name, [other for other in kept if other != name]):
            kept.remove(name)
    several_jobs = len(values[JOB]) > 1
    rows, cols = _default_axes(kept, values, several_jobs, rows, cols)
    used = {rows, cols}
    sections = [name for name in kept if name not in used]
    if several_jobs and JOB not in used:
        sections.insert(0, JOB)
    captions = [name for name in varying if name not in kept and name not in used]
    return Layout(rows, cols, tuple(sections), tuple(captions), values)


def _default_axes(
    kept: list[str],
    values: dict[str, Shown],
    several_jobs: bool,
    rows: str | None,
    cols: str | None,
) -> tuple[str | None, str | None]:
    if rows is None and cols is None:
        if several_jobs and len(kept) <= 1:
            return (kept[0] if kept else None), JOB
        return (kept[0] if kept else None), _pick_cols(kept[1:], values)
    if cols is None:
        rest = [name for name in kept if name != rows]
        if several_jobs and not rest and rows != JOB:
            return rows, JOB
        return rows, _pick_cols(rest, values)
    if rows is None:
        rest = [name for name in kept if name != cols]
        if rest:
            return rest[0], cols
        return (JOB if several_jobs and cols != JOB else None), cols
    return rows, cols
