"""Which recorded predictions belong to the spec as it is now.

A run folder keeps every prediction ever recorded in it; after a spec edit and a run, it holds
the old spec's predictions beside the new ones. `status`, `report` and `export` count those of
the current spec (the keys its plan makes) and name the rest on a line of their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchrun.errors import BatchrunError
from batchrun.humanize import counted
from batchrun.manifest.records import Record
from batchrun.planner.expand import iter_plan
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
        if self.why_unscoped:
            return f"every recorded prediction is counted: {self.why_unscoped}"
        if not self.gone:
            return None
        gone = counted(len(self.gone), "recorded prediction")
        if everything:
            return f"{gone} the spec no longer plans are included (--all)"
        return f"{gone} the spec no longer plans are not counted (--all counts them)"


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
