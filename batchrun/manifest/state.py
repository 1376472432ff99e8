"""Where a planned key stands: the one rule `plan`, `run`, `status` and `report` all apply.

    no record                                        → new        (run creates it)
    submitting, starting, processing                 → in_flight  (run polls it, or finds it)
    failed, canceled, aborted, error                 → failed     (run creates it again only
                                                                   with --retry-failed)
    succeeded, by a version other than the lock's    → stale      (only with --rerun-stale)
    succeeded, a file missing or not as recorded     → download   (run downloads it again)
    succeeded, every file as recorded                → done

"As recorded" means the file's size and sha256 are those the manifest holds. The size is looked
at first (a stat), so a missing or cut-short file costs no read; only a file of the right size
is hashed. `plan` thereby reads what `run` reads, and they cannot disagree about a key.
"""

from __future__ import annotations

import hashlib
import os
from enum import StrEnum
from pathlib import Path

from batchrun import safefs
from batchrun.errors import BatchrunError
from batchrun.manifest.reader import FileCheck, KeyState
from batchrun.manifest.records import FAILED, IN_FLIGHT, Record
from batchrun.planner.lock import Lock, read_lock
from batchrun.spec.load import Spec


class State(StrEnum):
    """Where a planned key stands (see the module's table)."""

    NEW = "new"
    DONE = "done"
    IN_FLIGHT = "in_flight"
    FAILED = "failed"
    DOWNLOAD = "download"
    STALE = "stale"


STATES = tuple(State)  # the order `plan` counts them in


def key_state(
    recorded: KeyState | Record | None,
    run_dir: Path,
    pinned: str | None = None,
    *,
    intact: bool | None = None,
) -> State:
    """Where one key stands, from its last record.

    `pinned` is the version the lock now gives the key's model (None: not pinned, so never
    stale). The files of a succeeded key are read, unless `intact` already says whether they
    are as recorded (the runner's producers know it from the survey, which read them).
    """
    if recorded is None:
        return State.NEW
    if recorded.status in IN_FLIGHT:
        return State.IN_FLIGHT
    if recorded.status in FAILED:
        return State.FAILED
    # succeeded
    if pinned is not None and recorded.version is not None and recorded.version != pinned:
        return State.STALE
    if recorded.missing:
        return State.DOWNLOAD
    if intact is None:
        intact = files_intact(run_dir, _checks(recorded))
    if not intact:
        return State.DOWNLOAD
    return State.DONE


def _checks(recorded: KeyState | Record) -> tuple[FileCheck, ...]:
    if isinstance(recorded, KeyState):
        return recorded.files
    return tuple((f.path, f.bytes, f.sha256) for f in recorded.files)


def files_intact(run_dir: Path, files: tuple[FileCheck, ...]) -> bool:
    """Whether every recorded file is in the run folder with its bytes."""
    return all(file_intact(run_dir, *file) for file in files)


def file_intact(run_dir: Path, relative: str, size: int, sha256: str) -> bool:
    """Whether a recorded file is in the run folder with its bytes; unreadable is not intact.

    Only a regular file inside the run folder counts: a manifest someone edited to name
    /dev/zero, a FIFO or a file elsewhere must not be hashed (forever, or at all).
    """
    try:
        with safefs.open_regular(run_dir / relative, run_dir) as handle:
            if os.fstat(handle.fileno()).st_size != size:
                return False
            return hashlib.file_digest(handle, "sha256").hexdigest() == sha256
    except OSError:
        return False


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def pinned_versions(spec: Spec, lock: Lock | None) -> dict[str, str | None]:
    """Job id → the version the lock pins its model to (None: a version, a deployment, an
    official model, or no lock)."""
    pinned: dict[str, str | None] = {}
    for job in spec.jobs:
        resolved = lock.resolve(job.target) if lock is not None else job.target
        pinned[job.id] = (
            resolved.version if job.target.kind == "model" and resolved.kind == "version" else None
        )
    return pinned


def pins_for_reading(spec: Spec | None) -> dict[str, str | None]:
    """`pinned_versions` for the commands that read a run (status, report): {} without a spec,
    or when its lock cannot be read, since they must work from the manifests alone."""
    if spec is None:
        return {}
    try:
        return pinned_versions(spec, read_lock(spec.path))
    except BatchrunError:
        return {}
