"""The plan against the manifest: what a run of the spec, as it is now, would do.

For each job, the planned keys split into new (never run), done (succeeded, files in place), in
flight (a run was stopped while they ran: the next run polls them), failed (skipped unless
`--retry-failed`) and to download (succeeded, but files are missing). Keys the manifest holds that
the spec no longer plans are counted too: after an edit, a reviewer sees both what will run and
what the edit left behind. Nothing is sent to the API and no file is read, only looked up.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batchrun.manifest.journal import FAILED, IN_FLIGHT, KeyState, ManifestIndex, load_index
from batchrun.planner.expand import PlannedPrediction, Shard, iter_plan
from batchrun.planner.lock import Lock, read_lock
from batchrun.spec.load import Spec
from batchrun.spec.target import Target

STATES = ("new", "done", "in_flight", "failed", "download")


def plan_state(state: KeyState | None, run_dir: Path) -> str:
    """Where one planned key stands: one of STATES."""
    if state is None:
        return "new"
    if state.status in IN_FLIGHT:
        return "in_flight"
    if state.status in FAILED:
        return "failed"
    if state.missing or not all((run_dir / path).exists() for path, _, _ in state.files):
        return "download"
    return "done"


@dataclass
class JobPlan:
    """One job of the plan, counted by state, with a few examples of what is new."""

    id: str
    target: Target
    pinned: str | None
    counts: Counter[str] = field(default_factory=Counter)
    new_examples: list[PlannedPrediction] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class PlanComparison:
    """The whole plan against a run folder's manifests."""

    name: str
    spec: Path
    output: Path
    shard: Shard | None
    manifests: list[Path]
    recorded: int
    jobs: list[JobPlan]
    not_in_spec: Counter[str]  # job → keys recorded that the spec no longer plans
    lock: Lock | None

    def count(self, state: str) -> int:
        """Planned keys in `state`, all jobs together."""
        return sum(job.counts[state] for job in self.jobs)

    @property
    def total(self) -> int:
        return sum(job.total for job in self.jobs)


def compare(
    spec: Spec,
    *,
    shard: Shard | None = None,
    output: Path | None = None,
    examples: int = 3,
) -> PlanComparison:
    """Walk the plan once (streaming) and place every key against the manifests of the run."""
    run_dir = output or spec.output
    index = load_index(run_dir)
    lock = read_lock(spec.path)
    jobs = {job.id: _job_plan(job.id, job.target, lock) for job in spec.jobs}
    unplanned = set(index.states)
    for planned, state in _placed(spec, index, shard):
        unplanned.discard(planned.key)
        where = plan_state(state, run_dir)
        job = jobs[planned.job]
        job.counts[where] += 1
        if where == "new" and len(job.new_examples) < examples:
            job.new_examples.append(planned)
    not_in_spec: Counter[str] = Counter()
    for key in unplanned:
        not_in_spec[index.states[key].job or "?"] += 1
    return PlanComparison(
        name=spec.name,
        spec=spec.path,
        output=run_dir,
        shard=shard,
        manifests=index.paths,
        recorded=len(index.states),
        jobs=list(jobs.values()),
        not_in_spec=not_in_spec if shard is None else Counter(),
        lock=lock,
    )


def iter_states(
    spec: Spec, *, shard: Shard | None = None, output: Path | None = None
) -> Iterator[tuple[PlannedPrediction, str]]:
    """Every planned prediction with its state (for `plan --json`), streaming."""
    run_dir = output or spec.output
    index = load_index(run_dir)
    for planned, state in _placed(spec, index, shard):
        yield planned, plan_state(state, run_dir)


def _placed(
    spec: Spec, index: ManifestIndex, shard: Shard | None
) -> Iterator[tuple[PlannedPrediction, KeyState | None]]:
    for planned in iter_plan(spec, shard=shard):
        yield planned, index.states.get(planned.key)


def _job_plan(job_id: str, target: Target, lock: Lock | None) -> JobPlan:
    pinned = None
    if lock is not None and target.kind == "model":
        resolved = lock.resolve(target)
        pinned = resolved.version if resolved.kind == "version" else None
    return JobPlan(job_id, target, pinned)
