"""Two plans compared key by key: what an edit of a spec adds and removes (`plan --diff REV`).

Keys hash what is predicted (target, input with files by content, repeat), so a prediction is
"added" when the new plan has a key the old one lacks and "removed" in the other direction;
an edit that changes only how things run (concurrency, rate, output) changes nothing here.

Memory: the old plan's keys as integers (36 bytes each), then the added predictions and the new
plan's keys; the removed ones are found by walking the old plan a second time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from batchrun.planner.expand import PlannedPrediction, iter_plan
from batchrun.spec.load import Spec

ADDED = "added"
REMOVED = "removed"


@dataclass
class JobDiff:
    """One job's share of the diff: counts, and the predictions added and removed."""

    id: str
    added: list[PlannedPrediction] = field(default_factory=list)
    removed: list[PlannedPrediction] = field(default_factory=list)
    unchanged: int = 0


@dataclass(frozen=True)
class PlanDiff:
    """The new plan against the old one, by job in the order the specs list them."""

    jobs: tuple[JobDiff, ...]

    @property
    def added(self) -> int:
        """Predictions the new plan adds, all jobs together."""
        return sum(len(job.added) for job in self.jobs)

    @property
    def removed(self) -> int:
        """Predictions the new plan no longer has, all jobs together."""
        return sum(len(job.removed) for job in self.jobs)

    @property
    def unchanged(self) -> int:
        """Predictions both plans share."""
        return sum(job.unchanged for job in self.jobs)

    def changes(self) -> Iterator[tuple[str, PlannedPrediction]]:
        """Every change as (ADDED or REMOVED, prediction), job by job."""
        for job in self.jobs:
            for planned in job.added:
                yield ADDED, planned
            for planned in job.removed:
                yield REMOVED, planned


def diff_plans(old: Spec | None, new: Spec) -> PlanDiff:
    """What `new` plans that `old` did not, and the reverse; `old` None plans nothing."""
    old_keys = {int(p.key, 16) for p in iter_plan(old)} if old is not None else set()
    jobs: dict[str, JobDiff] = {job.id: JobDiff(job.id) for job in new.jobs}
    new_keys: set[int] = set()
    for planned in iter_plan(new):
        number = int(planned.key, 16)
        new_keys.add(number)
        if number in old_keys:
            jobs[planned.job].unchanged += 1
        else:
            jobs[planned.job].added.append(planned)
    if old is not None:
        for planned in iter_plan(old):
            if int(planned.key, 16) not in new_keys:
                jobs.setdefault(planned.job, JobDiff(planned.job)).removed.append(planned)
    return PlanDiff(tuple(jobs.values()))
