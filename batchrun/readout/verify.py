"""Proving a run folder or an exported dataset complete and unmodified (`batchrun verify`).

    found = verify_run(spec, run_dir)        # every planned key succeeded, files as recorded
    found = verify_dataset(folder)           # every file as the export's record lists it
    found.ok; found.problems                 # each names a key or a file, and what differs

A run folder is checked against its spec's plan, key by key, by the rule every command applies
(`manifest.state.key_state`): one streaming pass over the plan, against the manifests read into
a `KeyTable` (a few numbers per key; each key's files read back as they are checked). A dataset
is checked against `batchrun-export.jsonl`, which `export --format hf` writes beside the card:
the planned count, the size and sha256 of every file (the card and the rows included), the
planned keys that are not in it and why, and the keys the sandbox made.
Either way every file is read and hashed: that is the point of the command.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from batchrun import safefs
from batchrun.errors import ManifestError, UsageError
from batchrun.humanize import printable
from batchrun.manifest.filestat import HashedFiles, file_difference
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.reader import KeyState
from batchrun.manifest.state import State, key_state, pinned_versions
from batchrun.manifest.table import load_table
from batchrun.planner.expand import iter_plan
from batchrun.planner.lock import read_lock
from batchrun.readout.export.layout import EXPORT_FORMAT, EXPORT_RECORD
from batchrun.spec.load import Spec

# What git and huggingface_hub add to a dataset folder once it is cloned or downloaded (a
# repository, its attributes, the hub's download cache): not part of what was exported.
FOREIGN_AT_ROOT = frozenset({".git", ".gitattributes", ".cache"})


@dataclass(frozen=True)
class Problem:
    """One way a run or a dataset is not what it should be: its key or file, and what differs."""

    subject: str  # a key, or a file's path relative to the folder verified
    kind: str  # not_started, in_flight, failed, stale, not_downloaded, file, unlisted, ...
    detail: str

    def line(self) -> str:
        return f"{self.subject}: {self.detail}"

    def to_json(self) -> dict[str, str]:
        return {"subject": self.subject, "kind": self.kind, "detail": self.detail}


@dataclass
class Verification:
    """What `verify` found: counts, and every problem (none: complete and unmodified)."""

    target: Path
    kind: Literal["run", "dataset"]
    planned: int | None = None
    succeeded: int = 0  # planned predictions present, succeeded, files as recorded
    files: int = 0  # files checked
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    fingerprint: str | None = None  # a dataset's: the sha256 of its export record

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "kind": self.kind,
            "ok": self.ok,
            "planned": self.planned,
            "succeeded": self.succeeded,
            "files": self.files,
            "bytes": self.bytes,
            "fingerprint": self.fingerprint,
            "problems": [problem.to_json() for problem in self.problems],
        }


def verify_run(
    spec: Spec, run_dir: Path, *, allow_sandbox: bool = False, deep: bool = False
) -> Verification:
    """Every prediction `spec` plans present in `run_dir`, succeeded, with its files as recorded
    (and made by the lock's version, where the spec is locked); none by the sandbox unless
    allowed. A file whose size, mtime and inode are as when it was last hashed is not read
    again, unless `deep` (manifest/filestat.py); nor are the journals' bytes hashed again to
    prove the table kept on disk, unless `deep` (manifest/tablecache.py)."""
    # A few numbers per key (kept on disk for the next reader); files read back to check.
    table = load_table(run_dir, save=True, prove=deep)
    hashed = HashedFiles(run_dir, deep=deep)
    pinned = pinned_versions(spec, read_lock(spec.path))
    found = Verification(run_dir, "run")
    # A key with no file is done or not by a few fields of its row: asked once per kind of row
    # (`KeyTable.placer`), each judged as the kind of API that made it. The others, with files
    # to hash or a problem to tell, are looked at one by one.
    placers = {made: table.placer(run_dir, pinned, sandbox=made) for made in (False, True)}
    files, sandbox_of = table.files, table.sandbox_of
    count = 0
    for planned in iter_plan(spec):
        count += 1
        row = table.rows.get(planned.key)
        if row is not None and not files[row]:
            made = bool(sandbox_of(row))
            state = placers[made](planned.key, row, planned.job)
            if state is State.DONE and (allow_sandbox or not made):
                found.succeeded += 1
                continue
        recorded = None if row is None else table.key_state(planned.key, row, every_file=True)
        problems = list(_key_problems(planned.key, planned.job, recorded, table, hashed, pinned))
        # A record that says no prediction was created is no result of the sandbox's.
        made = recorded is not None and not recorded.not_created
        if made and recorded is not None and recorded.sandbox and not allow_sandbox:
            problems.append(
                Problem(
                    planned.key, "sandbox", f"made by the sandbox, not a model (job {planned.job})"
                )
            )
        if recorded is not None:
            found.files += len(recorded.files)
            found.bytes += sum(size for _, size, _ in recorded.files)
        if not problems:
            found.succeeded += 1
        found.problems += problems
    found.planned = count
    hashed.save()
    return found


def _key_problems(
    key: str,
    job: str,
    recorded: KeyState | None,
    table: KeyTable,
    hashed: HashedFiles,
    pinned: dict[str, str | None],
) -> Iterator[Problem]:
    if recorded is None:
        yield Problem(key, "not_started", f"not started (job {job})")
        return
    differences = [
        (path, hashed.difference(path, size, sha256)) for path, size, sha256 in recorded.files
    ]
    changed = [(path, difference) for path, difference in differences if difference]
    # Judged as the kind of API that made it: whether that was the sandbox is a problem of
    # its own (unless allowed), never a reason to skip its files.
    state = key_state(
        recorded, hashed.run_dir, pinned[job], intact=not changed, sandbox=bool(recorded.sandbox)
    )
    if state is State.NEW:  # a record that says no prediction was created
        yield Problem(key, "not_started", f"not started (job {job})")
        return
    if state is State.IN_FLIGHT:
        yield Problem(key, "in_flight", f"{recorded.status}, not finished (job {job})")
    elif state is State.FAILED:
        error = table.record(key).error  # one read per failed key, for its reason
        why = f": {printable(error)}" if error else ""
        yield Problem(key, "failed", f"{recorded.status} (job {job}){why}")
    elif state is State.STALE:
        yield Problem(
            key,
            "stale",
            f"made by version {recorded.version}, not {pinned[job]} that the lock pins (job {job})",
        )
    if recorded.missing:
        yield Problem(key, "not_downloaded", f"output files never downloaded (job {job})")
    for path, difference in changed:
        yield Problem(path, "file", f"{difference} (key {key})")


def verify_dataset(folder: Path, *, allow_sandbox: bool = False) -> Verification:
    """Every file of an `hf` export as its record lists it, and nothing more; every planned
    prediction in it; none made by the sandbox unless allowed. The record is read line by
    line (hashed as it goes, for the fingerprint): only the listed paths are kept."""
    record_path = folder / EXPORT_RECORD
    found = Verification(folder, "dataset")
    listed: set[str] = set()
    missing = 0
    digest = hashlib.sha256()
    header: dict[str, Any] = {}
    try:
        handle = safefs.open_regular(record_path, folder)
    except OSError as error:
        reason = error.strerror or error
        raise UsageError(f"{folder}: cannot read {EXPORT_RECORD}: {reason}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            digest.update(raw)
            line = _record_line(record_path, number, raw)
            if number == 1:
                header = _header(record_path, line, found)
            elif "file" in line:
                path = str(line["file"])
                listed.add(path)
                found.files += 1
                found.bytes += int(line["bytes"])
                # A record from elsewhere may name ../../etc/passwd: never read outside.
                difference = (
                    file_difference(folder, path, int(line["bytes"]), str(line["sha256"]))
                    if safefs.is_inside(folder / path, folder)
                    else "outside the dataset's folder: not read"
                )
                if difference:
                    found.problems.append(Problem(path, "file", difference))
            elif "missing" in line:
                missing += 1
                why = f"not in the dataset: {line.get('why')} (job {line.get('job')})"
                found.problems.append(Problem(str(line["missing"]), "missing", why))
            elif "sandbox" in line and not allow_sandbox:
                api, job = line.get("api"), line.get("job")
                why = f"made by the sandbox at {api}, not a model (job {job})"
                found.problems.append(Problem(str(line["sandbox"]), "sandbox", why))
    if not header:
        raise UsageError(f"{record_path}: empty, not a batchrun export record")
    found.fingerprint = digest.hexdigest()
    found.problems += _count_problems(header, found, missing)
    found.problems += [
        Problem(path, "unlisted", f"not in {EXPORT_RECORD}: added after the export")
        for path in _files_under(folder)
        if path not in listed and path != EXPORT_RECORD
    ]
    return found


def _record_line(path: Path, number: int, raw: bytes) -> dict[str, Any]:
    try:
        line = json.loads(raw)
        if not isinstance(line, dict):
            raise TypeError
        if "file" in line:
            int(line["bytes"]), str(line["sha256"])
    except (ValueError, TypeError, KeyError):
        raise ManifestError(f"{path}:{number}: an unreadable line") from None
    return line


def _header(path: Path, line: dict[str, Any], found: Verification) -> dict[str, Any]:
    if line.get("batchrun_export") != EXPORT_FORMAT:
        raise UsageError(f"{path}: not a batchrun export record (format {EXPORT_FORMAT})")
    planned, here = line.get("planned"), line.get("here")
    found.planned = planned if isinstance(planned, int) else None
    found.succeeded = here if isinstance(here, int) else 0
    return line


def _count_problems(header: dict[str, Any], found: Verification, missing: int) -> list[Problem]:
    """The header's counts against its own lines: an edit of one without the other shows."""
    problems = []
    if found.planned is None:
        problems.append(
            Problem(
                EXPORT_RECORD,
                "unplanned",
                "how many predictions were planned is not known (the spec did not load at "
                "export), so the dataset cannot be proved complete",
            )
        )
    elif found.planned != found.succeeded + missing:
        problems.append(
            Problem(
                EXPORT_RECORD,
                "counts",
                f"{found.planned:,} planned, but {found.succeeded:,} here and {missing:,} "
                "listed as missing",
            )
        )
    if header.get("files") != found.files:
        problems.append(
            Problem(
                EXPORT_RECORD,
                "counts",
                f"says {header.get('files')} files, lists {found.files:,}",
            )
        )
    return problems


def _files_under(folder: Path) -> Iterator[str]:
    """Every file under `folder`, as a POSIX path relative to it (links not followed)."""
    for top, folders, files in os.walk(folder):
        relative = Path(top).relative_to(folder)
        if relative == Path("."):
            folders[:] = [name for name in folders if name not in FOREIGN_AT_ROOT]
            files = [name for name in files if name not in FOREIGN_AT_ROOT]
        for name in files:
            yield (relative / name).as_posix()
