"""What a run folder's manifest tells a plan: which keys have run, and how long each job's
predictions take."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from batchrun.manifest.reader import load_records, manifest_paths
from batchrun.manifest.records import Record, Status


@dataclass(frozen=True)
class JobTiming:
    """The mean `predict_time` the API reported for one job's succeeded predictions."""

    mean: float
    samples: int

    def expected(self, count: int) -> float:
        """Predict time to expect for `count` more predictions of this job."""
        return self.mean * count


@dataclass(frozen=True)
class Recorded:
    """The keys a run folder's manifests hold, and each job's mean predict time."""

    keys: frozenset[str] = frozenset()
    timings: dict[str, JobTiming] = field(default_factory=dict)


def recorded(run_dir: Path) -> Recorded:
    """What the run folder has recorded; empty without a manifest."""
    if not manifest_paths(run_dir):
        return Recorded()
    _, records = load_records(run_dir)
    return Recorded(frozenset(records), _timings(records.values()))


def _timings(records: Iterable[Record]) -> dict[str, JobTiming]:
    totals: dict[str, tuple[float, int]] = {}
    for record in records:
        seconds = record.metrics.get("predict_time")
        if record.status != Status.SUCCEEDED or isinstance(seconds, bool):
            continue
        if isinstance(seconds, int | float):
            total, count = totals.get(record.job, (0.0, 0))
            totals[record.job] = (total + float(seconds), count + 1)
    return {job: JobTiming(total / count, count) for job, (total, count) in totals.items()}
