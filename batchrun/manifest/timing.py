"""What a run folder's manifest says about how long each job's predictions take to run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchrun.manifest.journal import load_records, manifest_paths


@dataclass(frozen=True)
class JobTiming:
    """The mean `predict_time` the API reported for one job's succeeded predictions."""

    mean: float
    samples: int

    def expected(self, count: int) -> float:
        """Predict time to expect for `count` more predictions of this job."""
        return self.mean * count


def job_timings(run_dir: Path) -> dict[str, JobTiming]:
    """Per job, the mean predict time of its recorded successes; {} without a manifest."""
    if not manifest_paths(run_dir):
        return {}
    _, records = load_records(run_dir)
    totals: dict[str, tuple[float, int]] = {}
    for record in records.values():
        seconds = record.metrics.get("predict_time")
        if record.status != "succeeded" or isinstance(seconds, bool):
            continue
        if isinstance(seconds, int | float):
            total, count = totals.get(record.job, (0.0, 0))
            totals[record.job] = (total + float(seconds), count + 1)
    return {job: JobTiming(total / count, count) for job, (total, count) in totals.items()}
