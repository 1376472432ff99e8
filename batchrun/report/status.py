"""What a run folder's manifests say: counts by status and job, failures, time and files.

Each key is also placed by `manifest.state.key_state`, the rule `plan` and `run` follow: a key
whose files were deleted or changed since it succeeded counts as to download here too, one run by
a version other than the one SPEC.lock now pins as stale, and the status is complete only when
every key is done (or stale: `run` leaves those as they are unless asked).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from batchrun import safefs
from batchrun.api.objects import parse_time
from batchrun.manifest.reader import manifest_paths
from batchrun.manifest.records import ALL_STATUSES, IN_FLIGHT, Record, Status
from batchrun.manifest.state import STATES, State, key_state


@dataclass
class RunStatus:
    """A summary of every record in a run folder."""

    run_dir: Path
    manifests: list[Path]
    specs: list[str]
    counts: Counter[Status] = field(default_factory=Counter)
    jobs: dict[str, Counter[Status]] = field(default_factory=dict)
    states: Counter[State] = field(default_factory=Counter)  # keys by `key_state`
    failures: list[Record] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    missing_files: int = 0
    predict_time: float = 0.0
    first_created: datetime | None = None
    last_completed: datetime | None = None
    possible_duplicates: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        """Whether every key is done (succeeded, every file in place as recorded) or stale."""
        return self.states[State.DONE] + self.states[State.STALE] == self.total

    @property
    def in_flight(self) -> int:
        return sum(self.counts[status] for status in IN_FLIGHT)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form `status --json` prints."""
        return {
            "run_dir": str(self.run_dir),
            "manifests": [str(path) for path in self.manifests],
            "specs": self.specs,
            "total": self.total,
            "counts": {status: self.counts[status] for status in ALL_STATUSES},
            "states": {state: self.states[state] for state in STATES},
            "jobs": {
                job: {status: counts[status] for status in ALL_STATUSES}
                for job, counts in self.jobs.items()
            },
            "failures": [
                {
                    "key": record.key,
                    "job": record.job,
                    "status": record.status,
                    "prediction_id": record.prediction_id,
                    "error": record.error,
                    "missing": list(record.missing),
                }
                for record in self.failures
            ],
            "files": self.files,
            "bytes": self.bytes,
            "missing_files": self.missing_files,
            "predict_time": round(self.predict_time, 3),
            "first_created_at": _iso(self.first_created),
            "last_completed_at": _iso(self.last_completed),
            "possible_duplicates": self.possible_duplicates,
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def summarize(
    run_dir: Path,
    headers: Iterable[Mapping[str, Any]],
    records: Iterable[Record],
    pinned: Mapping[str, str | None] | None = None,
) -> RunStatus:
    """Summarise records already read from `run_dir` (see `load_records`); `pinned` gives each
    job's version in the lock (see `manifest.state.pins_for_reading`), for stale keys."""
    status = RunStatus(
        run_dir=run_dir,
        manifests=manifest_paths(run_dir),
        specs=sorted({str(header.get("spec")) for header in headers if header.get("spec")}),
    )
    for record in records:
        _add(status, record, (pinned or {}).get(record.job))
    return status


def failure_reason(record: Record) -> str:
    """Why a key counts among the failures, in a few words."""
    if record.error:
        return record.error
    if record.missing:
        return f"{len(record.missing)} files missing"
    if record.status == Status.SUCCEEDED:
        return "its files were deleted or changed since it succeeded"
    return record.status


def _add(status: RunStatus, record: Record, pinned: str | None) -> None:
    state = key_state(record, status.run_dir, pinned)
    status.states[state] += 1
    status.counts[record.status] += 1
    status.jobs.setdefault(record.job, Counter())[record.status] += 1
    status.files += len(record.files)
    status.bytes += sum(f.bytes for f in record.files)
    status.missing_files += len(record.missing)
    status.possible_duplicates += record.possible_duplicate
    if state in (State.FAILED, State.DOWNLOAD):
        status.failures.append(record)
    predict_time = record.metrics.get("predict_time")
    if isinstance(predict_time, int | float) and not isinstance(predict_time, bool):
        status.predict_time += float(predict_time)
    created, completed = parse_time(record.created_at), parse_time(record.completed_at)
    if (
        created
        and created.tzinfo
        and (status.first_created is None or created < status.first_created)
    ):
        status.first_created = created
    if (
        completed
        and completed.tzinfo
        and (status.last_completed is None or completed > status.last_completed)
    ):
        status.last_completed = completed


CSV_COLUMNS = (
    "key",
    "job",
    "status",
    "target",
    "vars",
    "input",
    "prediction_id",
    "version",
    "output",
    "files",
    "error",
    "predict_time",
    "created_at",
    "completed_at",
    "attempts",
)


# A spreadsheet runs a cell that starts with one of these as a formula; server text (an error,
# an output) must stay text, so such a cell gets a leading `'` (OWASP's CSV injection advice).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    )
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def export_csv(records: Iterable[Record], dest: Path) -> int:
    """Write one CSV row per record (nested values as JSON), atomically; return the row count."""
    # The user named `dest`; safefs still never writes through a link at its temporary.
    with safefs.atomic_writer(dest, None) as binary:
        handle = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        rows = write_csv(records, handle)
        handle.flush()
        handle.detach()  # the binary file stays open: atomic_writer closes and renames it
    return rows


def write_csv(records: Iterable[Record], handle: IO[str]) -> int:
    """Write the CSV (header, then one row per record) to an open text stream; the row count."""
    rows = 0
    writer = csv.writer(handle)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        target = record.target
        writer.writerow(
            [
                _cell(record.key),
                _cell(record.job),
                _cell(record.status),
                _cell(target.get("model") or target.get("deployment") or target.get("version")),
                _cell(record.vars),
                _cell(record.input),
                _cell(record.prediction_id),
                _cell(record.version),
                _cell(record.shown_output),
                _cell(" ".join(f.path for f in record.files)),
                _cell(record.error),
                _cell(record.metrics.get("predict_time")),
                _cell(record.created_at),
                _cell(record.completed_at),
                record.attempts,
            ]
        )
        rows += 1
    return rows
