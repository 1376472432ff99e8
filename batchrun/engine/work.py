"""One key's work in a run: what it needs, its last record, and the settings all work shares."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from batchrun.cost import Price
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.records import Api, Record
from batchrun.planner.expand import PlannedPrediction


class Action(Enum):
    """What a planned key needs, given what the manifest says of it."""

    CREATE = "create"
    POLL = "poll"
    RECONCILE = "reconcile"
    DOWNLOAD = "download"
    MOVE = "move"  # rename recorded files to the paths a changed `files` template gives


@dataclass(frozen=True, slots=True, eq=False)
class Work:
    """One key's work in this run; compared by identity (it borrows capacity limiter tokens)."""

    planned: PlannedPrediction
    action: Action
    previous: Record | None = None  # the key's last record in the manifest, if any


@dataclass
class Settings:
    run_dir: Path
    wait: int | None
    download: bool
    max_file_bytes: int | None
    recreate_delay: float = 1.0  # before creating again after a lost answer; doubles each time
    api: Api | None = None  # the API this run creates on: every record it creates says so
    hashed: HashedFiles | None = None  # the folder's files as last hashed (manifest/filestat.py)
    prices: Mapping[str, Price] = field(default_factory=dict)  # job → its price, if it has one
    timeouts: Mapping[str, float] = field(default_factory=dict)  # job → seconds, if it has one
