"""Where a planned key stands: the one rule `plan`, `run`, `status` and `report` all apply.

    no record, or one that says `not_created`        → new        (run creates it)
    a record another kind of API made: the sandbox's → new        (a result never counts as
      for a run on a real API, or the other way round               done for another API)
    submitting, starting, processing                 → in_flight  (run polls it, or finds it)
    failed, canceled, aborted, error                 → failed     (run creates it again only
                                                                   with --retry-failed)
    succeeded, by a version other than the lock's    → stale      (only with --rerun-stale)
    succeeded, a file missing or not as recorded     → download   (run downloads it again)
    succeeded, every file as recorded, but the       → move       (run renames them: no
      `files` template now names some elsewhere                    create, no download)
    succeeded, every file as recorded                → done

Which kind a run is: `--sandbox`, or a base URL whose server answers with the sandbox's marker
(see `batchrun.api.client.Client.is_sandbox`). A record without `api` (written before it was
kept) counts as a real API's. Readers (`plan`, `status`, `report`) count as the run folder's last
run did (`counts_as_sandbox`): a folder a sandbox run wrote last is read as the sandbox's.
Two real APIs (a proxy and api.replicate.com) are one kind: their results count for each other,
and each record keeps its own URL.

"As recorded" means the file's size and sha256 are those the manifest holds. The size is looked
at first (a stat), so a missing or cut-short file costs no read; only a file of the right size
is hashed. `plan` thereby reads what `run` reads, and they cannot disagree about a key.

Whether files move is asked only of keys whose record names another `files` template than the
current one (`files_template`; records written before it existed name none): only those have
their full record read back, so a resume over a large manifest whose template did not change
reads nothing more than the compact index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from batchrun.errors import BatchrunError
from batchrun.manifest.filestat import HashedFiles, file_difference
from batchrun.manifest.reader import FileCheck, KeyState
from batchrun.manifest.records import FAILED, IN_FLIGHT, Record, sandbox_of
from batchrun.output_files import output_urls, recorded_url
from batchrun.planner.lock import Lock, read_lock
from batchrun.planner.naming import FileNamer, NamingError, output_names
from batchrun.spec.load import Spec


class State(StrEnum):
    """Where a planned key stands (see the module's table)."""

    NEW = "new"
    DONE = "done"
    IN_FLIGHT = "in_flight"
    FAILED = "failed"
    DOWNLOAD = "download"
    STALE = "stale"
    MOVE = "move"


STATES = tuple(State)  # the order `plan` counts them in


def key_state(
    recorded: KeyState | Record | None,
    run_dir: Path,
    pinned: str | None = None,
    *,
    intact: bool | None = None,
    namer: FileNamer | None = None,
    read: Callable[[], Record] | None = None,
    sandbox: bool = False,
    hashed: HashedFiles | None = None,
) -> State:
    """Where one key stands, from its last record.

    `pinned` is the version the lock now gives the key's model (None: not pinned, so never
    stale). The files of a succeeded key are read, unless `intact` already says whether they
    are as recorded (the runner's producers know it from the survey, which read them).
    `namer` is the current `files` template (None: files never move); `read` gives the key's
    full record when `recorded` is only its index entry. `sandbox`: whether the run (or the
    view a reader takes) is the sandbox's; a record of the other kind is new for it.
    `hashed`: the folder's files as last hashed (`manifest.filestat`), so that files whose stat
    did not change are not read again.
    """
    if recorded is None or recorded.not_created or bool(recorded.sandbox) != sandbox:
        # A create refused outright (or never sent) made nothing: the key is where it was
        # before anything was recorded of it.
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
        intact = files_intact(run_dir, _checks(recorded), hashed)
    if not intact:
        return State.DOWNLOAD
    if namer is not None and may_move(recorded, namer):
        full = recorded if isinstance(recorded, Record) else read() if read else None
        if full is not None and moves(full, namer):
            return State.MOVE
    return State.DONE


def may_move(recorded: KeyState | Record, namer: FileNamer) -> bool:
    """Whether the key's files might move: only then is its full record read to see."""
    return bool(recorded.files) and recorded.files_template != namer.template


def moves(record: Record, namer: FileNamer) -> dict[int, str]:
    """For each recorded file (by its place in `record.files`) that the current template names
    elsewhere, its new path. A file the template cannot name now stays where it is."""
    urls = _output_urls(record)
    names = output_names(record.output) if record.output is not None else {}
    moved: dict[int, str] = {}
    for place, file in enumerate(record.files):
        found = urls.get(file.url)
        index, url = found if found is not None else (place, file.url)
        try:
            path = record.file_path(namer, index, url, names.get(url))
        except NamingError:
            continue
        if path != file.path:
            moved[place] = path
    return moved


def _output_urls(record: Record) -> dict[str, tuple[int, str]]:
    """Recorded URL → (index in the output, the URL as the output holds it): the index and the
    output key that named the file when it was downloaded."""
    found: dict[str, tuple[int, str]] = {}
    for index, url in enumerate(output_urls(record.output)):
        found.setdefault(recorded_url(url), (index, url))
    return found


def _checks(recorded: KeyState | Record) -> tuple[FileCheck, ...]:
    if isinstance(recorded, KeyState):
        return recorded.files
    return tuple((f.path, f.bytes, f.sha256) for f in recorded.files)


def files_intact(
    run_dir: Path, files: tuple[FileCheck, ...], hashed: HashedFiles | None = None
) -> bool:
    """Whether every recorded file is in the run folder with its bytes (with `hashed`, a file
    whose stat is as when it was last hashed is not read)."""
    if hashed is not None:
        difference = hashed.difference
        # A loop, not all() of a generator, which costs more: this runs once per key of a walk.
        for path, size, sha256 in files:  # noqa: SIM110
            if difference(path, size, sha256) is not None:
                return False
        return True
    return all(file_intact(run_dir, *file) for file in files)


def file_intact(run_dir: Path, relative: str, size: int, sha256: str) -> bool:
    """Whether a recorded file is in the run folder with its bytes; unreadable is not intact."""
    return file_difference(run_dir, relative, size, sha256) is None


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


def counts_as_sandbox(headers: Iterable[Mapping[str, Any]]) -> bool:
    """Whether readers count a run folder as the sandbox's: as its last run did (the newest
    journal header that names its API); a folder whose runs never said counts as a real API's."""
    newest = ""
    sandbox = False
    for header in headers:
        said = sandbox_of(header)
        written = str(header.get("written_at") or "")
        if said is not None and written >= newest:
            newest, sandbox = written, said
    return sandbox


def pins_for_reading(spec: Spec | None) -> dict[str, str | None]:
    """`pinned_versions` for the commands that read a run (status, report): {} without a spec,
    or when its lock cannot be read, since they must work from the manifests alone."""
    if spec is None:
        return {}
    try:
        return pinned_versions(spec, read_lock(spec.path))
    except BatchrunError:
        return {}
