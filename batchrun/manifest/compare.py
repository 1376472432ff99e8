"""The plan against the manifest: what a run of the spec, as it is now, would do.

For each job, the planned keys split by `state.key_state`, the rule `run` follows too: new (never
run), done (succeeded, files in place with their recorded sha256), in flight (a run was stopped
while they ran: the next run polls them), failed (skipped unless `--retry-failed`), to download
(succeeded, but files are missing or changed) and stale (succeeded by a version other than the
one SPEC.lock now pins: skipped unless `--rerun-stale`) and to move (succeeded, files in
place, but the `files` template now names them elsewhere: the run renames them). A result the
other kind of API made (the sandbox's, in a folder a real run wrote last) counts as new: a
folder is counted as its last run would count it (`state.counts_as_sandbox`). Keys the
manifest holds that the spec no longer plans are counted too: after an edit, a reviewer sees
both what will run and what the edit left behind. Nothing is sent to the API; the files of
succeeded keys are read to check them.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.state import State, counts_as_sandbox, pinned_versions
from batchrun.manifest.table import load_table
from batchrun.planner import plancache
from batchrun.planner.expand import PlannedPrediction, Shard
from batchrun.planner.lock import Lock, read_lock
from batchrun.planner.naming import JobNamers
from batchrun.planner.plancache import PlanKeys
from batchrun.planner.sample import Selection, iter_selected
from batchrun.spec.load import Spec
from batchrun.spec.target import Target


@dataclass
class JobPlan:
    """One job of the plan, counted by state, with a few examples of what is new."""

    id: str
    target: Target
    pinned: str | None
    counts: Counter[State] = field(default_factory=Counter)
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
    sandbox: bool = False  # counted as the sandbox's run (state.counts_as_sandbox)
    other_api: int = 0  # planned keys recorded by the other kind of API, counted as new

    def count(self, state: State) -> int:
        """Planned keys in `state`, all jobs together."""
        return sum(job.counts[state] for job in self.jobs)

    @property
    def total(self) -> int:
        return sum(job.total for job in self.jobs)


# New predictions whose inputs a walk of the plan cache renders again (`plan`'s examples and
# estimate); with more, the plan is walked whole: they are held until their keys are checked.
REDERIVED_MOST = 10_000


def compare(
    spec: Spec,
    *,
    shard: Shard | None = None,
    output: Path | None = None,
    examples: int = 3,
    selection: Selection | None = None,
    hashed: HashedFiles | None = None,
    table: KeyTable | None = None,
    on_new: Callable[[PlannedPrediction], None] | None = None,
    keep_plan: bool = False,
) -> PlanComparison:
    """Walk the plan once (streaming) and place every key against the manifests of the run.

    Each recorded key's state is written into the table (`KeyTable.state_of`), and, for a walk
    of the whole plan, whether the spec plans it (`KeyTable.planned`): `status`, given the
    table it counts from, counts what `plan` counts without reading anything twice.
    `selection`: only what `--sample` and `--limit` (and its shard) select; it replaces
    `shard`. `hashed`: the folder's files as last hashed (manifest/filestat.py); the default
    reads the index but never writes it, as `plan` sends and writes nothing. `on_new`: called
    with each planned prediction `run` would create (new), in plan order (`plan`'s estimate,
    `manifest.estimate.Estimator`: no second walk).

    The keys and jobs come from the run folder's plan cache when it holds this spec's plan
    (planner/plancache.py; not for `--sample`, whose ranking reads every row): the inputs of
    the new predictions (for `examples` and `on_new`) are rendered again, each checked against
    its kept key, and the plan is walked whole when they are too many or one differs.
    `keep_plan`: write that cache after a walk of the whole plan (`status` does, through
    `plancache.kept_walk` as `report` and `export` do; `plan` writes nothing).
    """
    selection = selection or Selection(shard)
    run_dir = output or spec.output
    table = table if table is not None else load_table(run_dir)
    hashed = hashed or HashedFiles(run_dir)
    cached = plancache.read(run_dir, spec) if selection.sample is None else None
    if cached is not None:
        walked = _placed_keys(spec, selection, run_dir, table, hashed, examples, on_new, cached)
        if walked is not None:
            return walked
    kept = plancache.kept_walk(spec, selection, run_dir) if keep_plan else None
    compared = _placed_keys(spec, selection, run_dir, table, hashed, examples, on_new, kept)
    assert compared is not None  # a walk of the plan places every key
    return compared


Walked = Iterator[tuple[str, str, PlannedPrediction | int]]


def _placed_keys(
    spec: Spec,
    selection: Selection,
    run_dir: Path,
    table: KeyTable,
    hashed: HashedFiles,
    examples: int,
    on_new: Callable[[PlannedPrediction], None] | None,
    plan: PlanKeys | Iterator[PlannedPrediction] | None,
) -> PlanComparison | None:
    """`compare`, walking the plan (`plan`: None, or a walk that keeps it, `kept_walk`) or the
    plan cache's keys (`plan`: the cache; None when the new keys' inputs cannot be had from it)."""
    lock = read_lock(spec.path)
    pinned = pinned_versions(spec, lock)
    namers = JobNamers.of_spec(spec)
    sandbox = counts_as_sandbox(table.headers)
    jobs = {job.id: JobPlan(job.id, job.target, pinned[job.id]) for job in spec.jobs}
    whole = not selection
    other_api = 0
    place = table.placer(run_dir, pinned, namers, sandbox=sandbox, hashed=hashed)
    # Counted per (job, state) as the walk goes, into the jobs' counts once it is over: this
    # loop runs once per key of the plan, and a Counter per job costs more.
    counted: dict[tuple[str, State], int] = {}
    get_row, mark, placed = table.rows.get, table.mark_planned, table.place
    inputs = examples > 0 or on_new is not None
    new_at: array[int] = array("Q")  # from the cache: the places of new keys, for their inputs

    def meet(planned: PlannedPrediction) -> None:
        if len(jobs[planned.job].new_examples) < examples:
            jobs[planned.job].new_examples.append(planned)
        if on_new is not None:
            on_new(planned)

    walk: Walked
    if isinstance(plan, PlanKeys):
        walk = plan.walk(selection)
    else:
        walked = plan if plan is not None else iter_selected(spec, selection)
        walk = ((p.key, p.job, p) for p in walked)
    for key, job_id, planned in walk:
        row = get_row(key)
        if row is None:
            where = State.NEW  # no record: new
        else:
            where = place(key, row, job_id)
            if whole:
                mark(row)
            if where is State.NEW:  # recorded, but by the other kind of API
                other_api += 1
            placed(row, where)
        tally = (job_id, where)
        counted[tally] = counted.get(tally, 0) + 1
        if where is State.NEW and inputs:
            if isinstance(planned, int):
                new_at.append(planned)
                if len(new_at) > REDERIVED_MOST:
                    return None
            else:
                meet(planned)
    if isinstance(plan, PlanKeys) and new_at:
        again = plan.rendered(spec, new_at)
        if again is None:
            return None
        for planned in again:
            meet(planned)
    for (job_id, where), count in counted.items():
        jobs[job_id].counts[where] += count
    not_in_spec: Counter[str] = Counter()
    # Predictions: a record that says none was created is not one.
    recorded = sum(1 for _ in table.counted_rows(None))
    if whole:
        for row in table.counted_rows(planned=False):
            not_in_spec[table.job_of(row) or "?"] += 1
    return PlanComparison(
        name=spec.name,
        spec=spec.path,
        output=run_dir,
        shard=selection.shard,
        manifests=table.paths,
        recorded=recorded,
        jobs=list(jobs.values()),
        not_in_spec=not_in_spec,
        lock=lock,
        sandbox=sandbox,
        other_api=other_api,
    )


def iter_states(
    spec: Spec,
    *,
    shard: Shard | None = None,
    output: Path | None = None,
    selection: Selection | None = None,
    table: KeyTable | None = None,
) -> Iterator[tuple[PlannedPrediction, State]]:
    """Every planned prediction (that `selection` keeps) with its state, for `plan --json`
    (`table`: the run folder's, read already)."""
    selection = selection or Selection(shard)
    run_dir = output or spec.output
    table = table if table is not None else load_table(run_dir)
    pinned = pinned_versions(spec, read_lock(spec.path))
    namers = JobNamers.of_spec(spec)
    sandbox = counts_as_sandbox(table.headers)
    hashed = HashedFiles(run_dir)  # read, never written: `plan` writes nothing
    place = table.placer(run_dir, pinned, namers, sandbox=sandbox, hashed=hashed)
    for planned, row in _placed(spec, table, selection):
        yield planned, State.NEW if row is None else place(planned.key, row, planned.job)


def _placed(
    spec: Spec, table: KeyTable, selection: Selection
) -> Iterator[tuple[PlannedPrediction, int | None]]:
    rows = table.rows
    for planned in iter_selected(spec, selection):
        yield planned, rows.get(planned.key)
