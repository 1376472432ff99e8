"""Before a run: what each planned key needs, given what the manifest says of it.

The survey walks the plan once (in a worker thread, it reads files) to count the work per job, to
honour `--sample`, `--limit` and `--shard`, and to check that the files of keys that already
succeeded are still there with their recorded sha256. The producers then walk the plan again and
classify each key with `classify`, which uses the survey's findings instead of reading any file
again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batchrun.api.objects import parse_time
from batchrun.engine.lifecycle import Action, file_intact
from batchrun.manifest.journal import FAILED, KeyState
from batchrun.planner.expand import PlannedPrediction, in_shard, iter_plan
from batchrun.planner.sample import sample_keys
from batchrun.spec.load import Spec

URL_LIFETIME = timedelta(hours=1)  # how long Replicate's output links live


@dataclass(frozen=True)
class Scope:
    """Which part of the plan a run covers."""

    shard: tuple[int, int] | None = None
    limit: int | None = None
    sample: int | None = None  # this many keys spread over the plan (of the shard)
    retry_failed: bool = False
    download: bool = True


@dataclass
class Survey:
    """What the run will do, per job."""

    planned: int = 0
    done: int = 0
    failed_before: int = 0  # failed in an earlier run and not retried now
    work: Counter[str] = field(default_factory=Counter)  # job → keys to act on
    quota: dict[str, int] = field(default_factory=dict)  # job → plan items within --limit
    broken: set[str] = field(default_factory=set)  # succeeded keys whose files are not intact
    sample: frozenset[str] | None = None  # the keys --sample chose; None: every key

    @property
    def total_work(self) -> int:
        return sum(self.work.values())

    def sampled(self, key: str) -> bool:
        """Whether `--sample` (if given) chose this key."""
        return self.sample is None or key in self.sample


def in_scope(planned: PlannedPrediction, scope: Scope) -> bool:
    """Whether a planned key belongs to this run's shard."""
    return scope.shard is None or in_shard(planned.key, scope.shard)


def classify(
    state: KeyState | None, scope: Scope, broken: set[str] | frozenset[str], key: str
) -> Action | None:
    """What a key needs now; None when it is done (or failed and not to be retried)."""
    if state is None:
        return Action.CREATE
    if state.status == "submitting":
        return Action.RECONCILE
    if state.status in ("starting", "processing"):
        return Action.POLL if state.prediction_id else Action.RECONCILE
    if state.status in FAILED:
        return Action.CREATE if scope.retry_failed else None
    # succeeded
    if state.missing or key in broken:
        if not scope.download:
            return None
        if scope.retry_failed and _expired(state):
            return Action.CREATE
        return Action.DOWNLOAD
    return None


def _expired(state: KeyState) -> bool:
    completed = parse_time(state.completed_at)
    if completed is None or completed.tzinfo is None:
        return False
    return datetime.now(UTC) - completed > URL_LIFETIME


def survey(spec: Spec, states: dict[str, KeyState], run_dir: Path, scope: Scope) -> Survey:
    """Walk the plan once and count what the run will do (reads the files of done keys)."""
    found = Survey()
    for job in spec.jobs:
        found.quota[job.id] = 0
    if scope.sample is not None:
        found.sample = sample_keys(spec, scope.sample, shard=scope.shard)
    for planned in iter_plan(spec):
        if not in_scope(planned, scope) or not found.sampled(planned.key):
            continue
        if scope.limit is not None and found.planned >= scope.limit:
            break
        found.planned += 1
        found.quota[planned.job] += 1
        state = states.get(planned.key)
        if (
            state is not None
            and state.status == "succeeded"
            and not state.missing
            and scope.download
            and not _files_intact(run_dir, state)
        ):
            found.broken.add(planned.key)
        action = classify(state, scope, found.broken, planned.key)
        if action is None:
            if state is not None and state.status in FAILED:
                found.failed_before += 1
            else:
                found.done += 1
            continue
        found.work[planned.job] += 1
    return found


def _files_intact(run_dir: Path, state: KeyState) -> bool:
    return all(file_intact(run_dir, *file) for file in state.files)
