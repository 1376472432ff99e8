"""Before a run: what each planned key needs, given what the manifest says of it.

The survey walks the plan once (in a worker thread, it reads files) to count the work per job, to
honour `--sample`, `--limit` and `--shard`, and to place each key with
`manifest.state.key_state`, the rule `plan` follows too (so the files of keys that succeeded are
checked against their recorded size and sha256). The producers then walk the plan again and ask
`Survey.action` what each key needs, which uses the survey's findings instead of reading any file
again.

A key whose files the `files` template now names elsewhere (`State.MOVE`) has its full record
read back here, once (only keys whose record names another template); its files are renamed by
the run, with no create and no download.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from batchrun.engine.choices import RunChoices
from batchrun.engine.work import Action
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.reader import KeyState
from batchrun.manifest.records import Status
from batchrun.manifest.state import State, key_state, pinned_versions
from batchrun.manifest.table import TableStates
from batchrun.planner.expand import PlannedPrediction, Shard, in_shard
from batchrun.planner.lock import Lock
from batchrun.planner.naming import JobNamers
from batchrun.planner.plancache import planned_keys
from batchrun.planner.sample import Selection, sample_keys
from batchrun.spec.load import Spec

URL_LIFETIME = timedelta(hours=1)  # how long Replicate's output links live
_MICROSECOND = timedelta(microseconds=1)


@dataclass
class Survey:
    """What the run will do, per job."""

    planned: int = 0
    done: int = 0
    failed_before: int = 0  # failed in an earlier run and not retried now
    stale_kept: int = 0  # succeeded by a version the lock no longer pins, not re-run now
    work: Counter[str] = field(default_factory=Counter)  # job → keys to act on
    quota: dict[str, int] = field(default_factory=dict)  # job → plan items within --limit
    broken: set[str] = field(default_factory=set)  # succeeded keys whose files are not intact
    moving: set[str] = field(default_factory=set)  # succeeded keys whose files move
    pinned: dict[str, str | None] = field(default_factory=dict)  # job → the lock's version
    sample: frozenset[str] | None = None  # the keys --sample chose; None: every key
    sandbox: bool = False  # whether the run is on the sandbox (`survey`'s `sandbox`)
    # Keys whose result a real API made that this run, on the sandbox, would create again.
    real_replaced: int = 0

    @property
    def total_work(self) -> int:
        return sum(self.work.values())

    def sampled(self, key: str) -> bool:
        """Whether `--sample` (if given) chose this key."""
        return self.sample is None or key in self.sample

    def state(self, planned: PlannedPrediction, state: KeyState | None, run_dir: Path) -> State:
        """Where a key the survey walked stands (its files are not read again)."""
        intact = planned.key not in self.broken
        where = key_state(
            state, run_dir, self.pinned.get(planned.job), intact=intact, sandbox=self.sandbox
        )
        return State.MOVE if where is State.DONE and planned.key in self.moving else where

    def action(
        self, planned: PlannedPrediction, state: KeyState | None, scope: RunChoices, run_dir: Path
    ) -> Action | None:
        """What a key the survey walked needs now; None when it is left as it is."""
        return classify(self.state(planned, state, run_dir), state, scope)


def in_scope(planned: PlannedPrediction, scope: RunChoices) -> bool:
    """Whether a planned key belongs to this run's shard."""
    return scope.shard is None or in_shard(planned.key, scope.shard)


def classify(where: State, state: KeyState | None, scope: RunChoices) -> Action | None:
    """What a key in state `where` needs in this run; None when it is left as it is (`state`
    is not looked at for a key done)."""
    if where is State.DONE:
        return None
    if where is State.NEW or state is None:
        return Action.CREATE
    if where is State.IN_FLIGHT:
        if state.status == Status.SUBMITTING or not state.prediction_id:
            return Action.RECONCILE
        return Action.POLL
    if where is State.FAILED:
        return Action.CREATE if scope.retry_failed else None
    if where is State.STALE:
        return Action.CREATE if scope.rerun_stale else None
    if where is State.DOWNLOAD:
        if not scope.download:
            return None
        if scope.retry_failed and _expired(state):
            return Action.CREATE
        return Action.DOWNLOAD
    if where is State.MOVE:
        return Action.MOVE
    return None


def _expired(state: KeyState) -> bool:
    if state.completed is None:  # no time, or one without a zone: not known to be old
        return False
    return time.time() * 1e6 - state.completed > URL_LIFETIME / _MICROSECOND


def selection_of(scope: RunChoices) -> Selection:
    """The part of the plan a run acts on: its `--shard`, `--sample` and `--limit`."""
    return Selection(Shard(*scope.shard) if scope.shard else None, scope.sample, scope.limit)


def survey(
    spec: Spec,
    states: TableStates,
    run_dir: Path,
    scope: RunChoices,
    lock: Lock | None = None,
    sandbox: bool = False,
    hashed: HashedFiles | None = None,
) -> Survey:
    """Walk the plan once and count what the run will do (reads the files of done keys).

    `states`: the run folder's keys as its table has them (`manifest.table.load_index`).
    `sandbox`: the run is on the sandbox, so only the sandbox's results count (and the other
    way round): a record of the other kind is new (manifest/state.py). `hashed`: the folder's
    files as last hashed, so that unchanged ones are not read (manifest/filestat.py).
    """
    found = Survey(pinned=pinned_versions(spec, lock), sandbox=sandbox)
    for job in spec.jobs:
        found.quota[job.id] = 0
    selection = selection_of(scope)
    if scope.sample is not None:
        found.sample = sample_keys(spec, scope.sample, shard=scope.shard)
    # Without downloads, what is on disk changes nothing: its files are not read.
    intact = None if scope.download else True
    done = 0
    # Keys are placed by kind of row (`KeyTable.placer`), not one by one.
    table = states.table
    place = table.placer(
        run_dir,
        found.pinned,
        JobNamers.of_spec(spec),
        sandbox=sandbox,
        hashed=hashed,
        intact=intact,
    )
    quota = found.quota
    get_row = table.rows.get
    # Keys and jobs only (what the run sends, its producers render): from the plan kept in the
    # run folder when it holds this spec's plan (planner/plancache.py), else a walk of the plan.
    for key, job_id in planned_keys(spec, run_dir, selection, sampled=found.sample):
        quota[job_id] += 1
        row = get_row(key)
        where = State.NEW if row is None else place(key, row, job_id)
        if where is State.DONE:  # the common case, once per key of a large folder
            done += 1
            continue
        state = None if row is None else states.get(key)
        real = state is not None and state.sandbox is False and not state.not_created
        if sandbox and where is State.NEW and real:
            found.real_replaced += 1  # (a record that says none was created replaces nothing)
        if where is State.DOWNLOAD and state is not None and not state.missing:
            found.broken.add(key)
        if where is State.MOVE:
            found.moving.add(key)
        action = classify(where, state, scope)
        if action is None:
            if where is State.FAILED:
                found.failed_before += 1
            elif where is State.STALE:
                found.stale_kept += 1
            else:
                done += 1
            continue
        found.work[job_id] += 1
    found.done = done
    found.planned = sum(quota.values())
    return found
