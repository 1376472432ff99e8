"""What `plan` shows before a run: each job's count of predictions and its first few.

Apart from the plan itself (`expand.py`), so that `validate`, which walks the plan but shows no
summary, does not create these records at start-up (issue 22).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from batchrun.planner.expand import PlannedPrediction, Shard, iter_plan
from batchrun.spec.load import Spec
from batchrun.spec.target import Target


@dataclass(frozen=True)
class JobSummary:
    """One job's part of a plan: its size and a few example predictions."""

    id: str
    target: Target
    count: int
    examples: tuple[PlannedPrediction, ...]


@dataclass(frozen=True)
class PlanSummary:
    """What `plan` shows when there is no manifest to compare with yet."""

    name: str
    spec: Path
    output: Path
    shard: Shard | None
    jobs: tuple[JobSummary, ...] = field(default=())

    @property
    def total(self) -> int:
        """Predictions planned, all jobs together."""
        return sum(job.count for job in self.jobs)


def summarize(
    spec: Spec,
    *,
    shard: tuple[int, int] | None = None,
    output: Path | None = None,
    examples: int = 3,
    plan: Iterable[PlannedPrediction] | None = None,
) -> PlanSummary:
    """Walk the plan once (streaming) and keep counts and the first `examples` of each job.

    `plan`: the part of the plan to count (what `--sample` and `--limit` kept of the shard's).
    """
    counts = dict.fromkeys((job.id for job in spec.jobs), 0)
    kept: dict[str, list[PlannedPrediction]] = {job.id: [] for job in spec.jobs}
    for planned in iter_plan(spec, shard=shard) if plan is None else plan:
        counts[planned.job] += 1
        if len(kept[planned.job]) < examples:
            kept[planned.job].append(planned)
    jobs = tuple(
        JobSummary(job.id, job.target, counts[job.id], tuple(kept[job.id])) for job in spec.jobs
    )
    chosen = Shard(*shard) if shard else None
    return PlanSummary(spec.name, spec.path, output or spec.output, chosen, jobs)
