"""Two runs' predictions paired for `report RUN --compare OTHER`: by job, variables and repeat.

A side is a list of records, each with the run folder its files are in: one run folder's
records, or (OTHER a git revision) the records of the spec's plan at that revision, looked up in
the run folders where earlier runs of it left them. Two records pair when they share job,
variables and repeat: the same row of the matrix, before and after. What differs between them
(input fields, the target) is named; records with no partner are listed apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchrun.manifest.reader import load_records, manifest_paths
from batchrun.manifest.records import Record
from batchrun.manifest.scope import scope
from batchrun.manifest.state import counts_as_sandbox
from batchrun.planner.diff import FieldPath, differing_fields
from batchrun.planner.keys import canonical_json
from batchrun.spec.load import Spec

Located = tuple[Record, Path]  # a record, and the run folder its files are in


@dataclass(frozen=True)
class Side:
    """One side of a comparison: what it is called on the page, and its records."""

    label: str
    records: list[Located] = field(default_factory=list)


@dataclass(frozen=True)
class Pair:
    """The same row in both runs: `old` from OTHER, `new` from RUN."""

    old: Record
    old_dir: Path
    new: Record
    new_dir: Path
    differing: tuple[FieldPath, ...]  # ("target",), ("input", "prompt"), ...: what differs

    @property
    def same_prediction(self) -> bool:
        """Whether both are one prediction (one key): the same input to the same target."""
        return self.old.key == self.new.key


@dataclass(frozen=True)
class Comparison:
    """Pairs, then what only one side has, each by job and variables."""

    old: Side
    new: Side
    pairs: list[Pair]
    only_old: list[Located]
    only_new: list[Located]


def row_of(record: Record) -> str:
    """What a record is the result of, as a row: its job, variables and repeat."""
    return canonical_json({"job": record.job, "vars": record.vars, "repeat": record.repeat})


def compare_sides(old: Side, new: Side) -> Comparison:
    """Pair the two sides' records row by row (a row recorded twice on a side: its last one)."""
    olds = {row_of(record): (record, folder) for record, folder in old.records}
    news = {row_of(record): (record, folder) for record, folder in new.records}
    pairs = []
    for row, (record, folder) in news.items():
        if row in olds:
            before, before_dir = olds[row]
            pairs.append(Pair(before, before_dir, record, folder, _differing(before, record)))
    only_old = [located for row, located in olds.items() if row not in news]
    only_new = [located for row, located in news.items() if row not in olds]
    # Manifests hold records in the order they finished: show them by job and variables.
    pairs.sort(key=lambda pair: _order(pair.new))
    only_old.sort(key=lambda located: _order(located[0]))
    only_new.sort(key=lambda located: _order(located[0]))
    return Comparison(old, new, pairs, only_old, only_new)


def _order(record: Record) -> str:
    """Job, then the variables in the order the row has them (its axes' order), then repeat."""
    return canonical_json([record.job, list(record.vars.items()), record.repeat])


def _differing(old: Record, new: Record) -> tuple[FieldPath, ...]:
    found: list[FieldPath] = []
    if canonical_json(old.target) != canonical_json(new.target):
        found.append(("target",))
    found.extend(differing_fields(old.input, new.input, ("input",)))
    return tuple(found)


def run_side(run_dir: Path, label: str, spec: Spec | None = None, *, everything: bool) -> Side:
    """A run folder's records: those of `spec` (else the spec its manifest names), or with
    `everything` every one; of the kind of API the folder counts as (a real run's page never
    shows the sandbox's pictures as its own), as `report` shows them."""
    headers, by_key = load_records(run_dir)
    named = next((h["spec"] for h in headers if isinstance(h.get("spec"), str) and h["spec"]), None)
    chosen = scope(by_key.values(), spec or (Path(named) if named else None)).chosen(everything)
    sandbox = counts_as_sandbox(headers)
    return Side(label, [(record, run_dir) for record in chosen if record.sandbox == sandbox])


def keys_side(keys: Iterable[str], folders: Sequence[Path], label: str) -> Side:
    """The records of `keys` found in `folders` (the first folder that has a key wins), in the
    order the keys come."""
    wanted = list(dict.fromkeys(keys))
    found: dict[str, Located] = {}
    for folder in dict.fromkeys(folders):
        if not manifest_paths(folder):
            continue
        _, by_key = load_records(folder)
        for key in wanted:
            # A record that says no prediction was created is no result to compare.
            if key not in found and key in by_key and not by_key[key].not_created:
                found[key] = (by_key[key], folder)
    return Side(label, [found[key] for key in wanted if key in found])
