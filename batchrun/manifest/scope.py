"""Which recorded predictions belong to the spec as it is now.

A run folder keeps every prediction ever recorded in it; after a spec edit and a run, it holds
the old spec's predictions beside the new ones. `status`, `report` and `export` count those of
the current spec (the keys its plan makes) and name the rest on a line of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchrun.errors import BatchrunError
from batchrun.humanize import counted
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import Record
from batchrun.planner.expand import iter_plan
from batchrun.planner.plancache import planned_numbers
from batchrun.spec.load import Spec, load_spec


@dataclass
class Scope:
    """The records of the current spec, and those it no longer plans (`gone`)."""

    current: list[Record] = field(default_factory=list)
    gone: list[Record] = field(default_factory=list)
    spec: Spec | None = None
    why_unscoped: str | None = None  # why every record counts as current, when it does
    planned: int | None = None  # how many keys the spec plans (None: unscoped)
    unrecorded: list[tuple[str, str]] = field(default_factory=list)  # (key, job) never recorded

    def chosen(self, everything: bool) -> list[Record]:
        """The records a command counts: the current spec's, or with `--all` every one."""
        return self.current + self.gone if everything else self.current

    def note(self, everything: bool) -> str | None:
        """The line that names the recorded predictions outside the current spec, if any."""
        return _note(self.why_unscoped, len(self.gone), everything)


def _note(why_unscoped: str | None, gone: int, everything: bool) -> str | None:
    if why_unscoped:
        return f"every recorded prediction is counted: {why_unscoped}"
    if not gone:
        return None
    said = counted(gone, "recorded prediction")
    if everything:
        return f"{said} the spec no longer plans are included (--all)"
    return f"{said} the spec no longer plans are not counted (--all counts them)"


@dataclass
class TableScope:
    """`Scope` over a `KeyTable`: which rows are the current spec's, by the table's planned
    flags, without a record in memory. Rows come in the order `Scope.chosen` gives records:
    the current spec's in the order keys were first recorded, then (with `--all`) the rest."""

    table: KeyTable
    spec: Spec | None = None
    why_unscoped: str | None = None
    planned: int | None = None
    gone: int = 0
    gone_keys: frozenset[str] = frozenset()  # with `keep_gone`
    unrecorded: list[tuple[str, str]] = field(default_factory=list)  # (key, job) never recorded

    def chosen(self, everything: bool) -> Iterator[tuple[str, int]]:
        """(key, row) of each record a command counts (see `Scope.chosen`)."""
        key_of = self.table.rows.key_of
        return ((key_of(row), row) for row in self.chosen_rows(everything))

    def chosen_rows(self, everything: bool) -> Iterator[int]:
        """The rows of `chosen`, without their keys (which cost a string each)."""
        table = self.table
        if self.why_unscoped is not None:
            yield from table.counted_rows(None)
            return
        yield from table.counted_rows(True)
        if everything:
            yield from table.counted_rows(False)

    def note(self, everything: bool) -> str | None:
        return _note(self.why_unscoped, self.gone, everything)


def spec_to_scope(spec: Spec | Path | None) -> tuple[Spec | None, str | None]:
    """The spec that scopes a run's records, or None and why every record counts."""
    if isinstance(spec, Path):
        try:
            return load_spec(spec), None
        except BatchrunError:
            return None, f"its spec {spec} does not load"
    if spec is None:
        return None, "no manifest names its spec"
    return spec, None


def scope_table(
    table: KeyTable,
    spec: Spec | None,
    why_unscoped: str | None = None,
    *,
    planned: int | None = None,
    keep_gone: bool = False,
) -> TableScope:
    """`scope` for a table (see `spec_to_scope` for `spec` and `why_unscoped`). `planned`: the
    plan was walked already (`manifest.compare.compare` marked the table's planned keys) and
    planned that many; otherwise it is walked here, and `unrecorded` listed."""
    if spec is None:
        return TableScope(table, why_unscoped=why_unscoped or "no manifest names its spec")
    split = TableScope(table, spec=spec)
    if planned is None:
        try:
            planned = _mark_planned(table, spec, split.unrecorded)
        except BatchrunError:
            return TableScope(table, why_unscoped=f"its spec {spec.path} does not plan")
    split.planned = planned
    gone = table.counted_rows(planned=False)  # predictions the plan did not mark
    if keep_gone:
        split.gone_keys = frozenset(map(table.rows.key_of, gone))
        split.gone = len(split.gone_keys)
    else:
        split.gone = sum(1 for _ in gone)
    return split


def _mark_planned(table: KeyTable, spec: Spec, unrecorded: list[tuple[str, str]]) -> int:
    # Only keys and jobs: from the plan cache of the folder the table was read from, when it
    # holds this spec's plan (planner/plancache.py), else by a walk of the plan, which writes
    # that cache as `status`'s does (a folder with no journal gets none).
    run_dir = table.paths[0].parent if table.paths else None
    return table.mark_plan(planned_numbers(spec, run_dir, keep=True), unrecorded)


def spec_of_run(headers: Iterable[Mapping[str, Any]]) -> Path | None:
    """The spec file the run folder's first manifest names, if it says one."""
    for header in headers:
        if header.get("spec"):
            return Path(str(header["spec"]))
    return None


def scope(records: Iterable[Record], spec: Spec | Path | None) -> Scope:
    """Split `records` by whether `spec` (a Spec, or the path of one) plans their keys.

    Without a spec, or one that no longer loads, every record is current: a report of an old
    run must still work after its spec has gone. A record that says `not_created` is no
    prediction (its key counts as new, manifest/state.py): it is in neither list.
    """
    records = [record for record in records if not record.not_created]
    if isinstance(spec, Path):
        try:
            spec = load_spec(spec)
        except BatchrunError:
            return Scope(current=list(records), why_unscoped=f"its spec {spec} does not load")
    if spec is None:
        return Scope(current=list(records), why_unscoped="no manifest names its spec")
    try:
        # key → job, in the plan's order
        planned = {planned.key: planned.job for planned in iter_plan(spec)}
    except BatchrunError:
        return Scope(current=list(records), why_unscoped=f"its spec {spec.path} does not plan")
    split = Scope(spec=spec, planned=len(planned))
    for record in records:
        (split.current if record.key in planned else split.gone).append(record)
    recorded = {record.key for record in split.current}
    split.unrecorded = [(key, job) for key, job in planned.items() if key not in recorded]
    return split
