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
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchrun.errors import UsageError
from batchrun.manifest.records import Record

JOB = "job"
MISSING_KEY = "\x00missing"
MISSING_LABEL = "—"
COLS_THAT_FIT = 8


@dataclass(frozen=True, slots=True)
class Value:
    """One value of a variable: `key` tells values apart, `label` is what the page shows."""

    key: str
    raw: Any = None

    @property
    def missing(self) -> bool:
        """True for records that do not set the variable at all."""
        return self.key == MISSING_KEY

    @property
    def label(self) -> str:
        """What the page shows; computed when shown, since most values of a big run are not."""
        return MISSING_LABEL if self.missing else label(self.raw)


MISSING = Value(MISSING_KEY)


@dataclass(frozen=True, slots=True)
class Layout:
    """The variables of the grid: rows, columns, sections (outermost first) and captions."""

    rows: str | None
    cols: str | None
    sections: tuple[str, ...]
    captions: tuple[str, ...]
    values: dict[str, tuple[Value, ...]]  # each variable's values in display order; job last
    cells: dict[str, list[Value]]  # every variable's value in each record, in record order
    positions: dict[str, dict[str, int]] = field(default_factory=dict)  # name → key → place

    def position(self, name: str, value: Value) -> int:
        """Where `value` stands among the values of `name` (the page's filter names it so)."""
        return self.positions[name][value.key]

    def ordered(self, name: str, present: Iterable[str]) -> list[Value]:
        """The values of `name` whose keys are in `present`, in display order."""
        keys = set(present)
        return [value for value in self.values[name] if value.key in keys]


def label(raw: Any) -> str:
    """How a value reads: text as is, a mapping (a CSV row) as `column: value` pairs."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        return " · ".join(f"{key}: {label(value)}" for key, value in raw.items())
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)


def identity(raw: Any) -> str:
    """A key for a value: cheap for scalars (it is computed for every record), typed."""
    if isinstance(raw, str):
        return "s" + raw
    if isinstance(raw, bool):  # before int: True is an int too
        return "b" + str(raw)
    if isinstance(raw, int):
        return "i" + str(raw)
    if isinstance(raw, float):
        return "f" + repr(raw)
    return "j" + json.dumps(
        raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )


def variables(records: Sequence[Record], declared: Sequence[str] = ()) -> list[str]:
    """Every variable the records set: declared axes first, then in order of appearance."""
    seen: set[str] = set()
    for record in records:
        seen.update(record.vars)
    names = [name for name in dict.fromkeys(declared) if name in seen and name != JOB]
    for record in records:
        names.extend(name for name in record.vars if name not in names)
    return names


def table(records: Sequence[Record], names: Iterable[str]) -> dict[str, list[Value]]:
    """Each variable's value in each record, in record order; one Value per distinct value."""
    result: dict[str, list[Value]] = {}
    for name in names:
        known: dict[str, Value] = {}
        column = []
        for record in records:
            if name == JOB:
                raw: Any = record.job
            elif name in record.vars:
                raw = record.vars[name]
            else:
                column.append(MISSING)
                continue
            key = identity(raw)
            value = known.get(key)
            if value is None:
                value = known[key] = Value(key, raw)
            column.append(value)
        result[name] = column
    return result


def all_values(column: Sequence[Value]) -> tuple[Value, ...]:
    """A variable's distinct values in display order: numbers ascending, else first seen.

    Numbers are sorted because shards and retries scramble the manifest's order; anything else
    keeps the order the records show it, which is the plan's order. Missing comes last.
    """
    found: dict[str, Value] = {}
    for value in column:
        found.setdefault(value.key, value)
    present = [v for v in found.values() if not v.missing]
    if present and all(_is_number(v.raw) for v in present):
        present.sort(key=lambda v: float(v.raw))
    if MISSING_KEY in found:
        present.append(MISSING)
    return tuple(present)


def _is_number(raw: Any) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


def _determined(cells: dict[str, list[Value]], name: str, by: Sequence[str]) -> bool:
    """True when the values of `by` fix the value of `name` in every record."""
    seen: dict[tuple[str, ...], str] = {}
    others = [cells[other] for other in by]
    for index, value in enumerate(cells[name]):
        group = tuple(column[index].key for column in others)
        if seen.setdefault(group, value.key) != value.key:
            return False
    return True


def _pick_cols(names: Sequence[str], values: dict[str, tuple[Value, ...]]) -> str | None:
    if not names:
        return None
    fitting = [name for name in names if len(values[name]) <= COLS_THAT_FIT]
    if fitting:
        # max() keeps the first of equals: declared order breaks ties.
        return max(fitting, key=lambda name: len(values[name]))
    return min(names, key=lambda name: len(values[name]))


def choose_layout(
    records: Sequence[Record],
    declared: Sequence[str] = (),
    rows: str | None = None,
    cols: str | None = None,
) -> Layout:
    """The layout for these records; `rows`/`cols` as the user gave them (None: default).

    UsageError for a variable no record has, or the same variable twice.
    """
    names = variables(records, declared)
    cells = table(records, [*names, JOB])
    values = {name: all_values(column) for name, column in cells.items()}
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
        if _determined(cells, name, [other for other in kept if other != name]):
            kept.remove(name)
    several_jobs = len(values[JOB]) > 1
    rows, cols = _default_axes(kept, values, several_jobs, rows, cols)
    used = {rows, cols}
    sections = [name for name in kept if name not in used]
    if several_jobs and JOB not in used:
        sections.insert(0, JOB)
    captions = [name for name in varying if name not in kept and name not in used]
    positions = {
        name: {value.key: place for place, value in enumerate(shown)}
        for name, shown in values.items()
    }
    return Layout(rows, cols, tuple(sections), tuple(captions), values, cells, positions)


def _default_axes(
    kept: list[str],
    values: dict[str, tuple[Value, ...]],
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
