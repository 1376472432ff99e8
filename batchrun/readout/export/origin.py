"""Where a dataset came from: its spec, git commit, lock, license, batchrun version and time."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from batchrun import safefs
from batchrun.errors import BatchrunError
from batchrun.manifest.records import utcnow
from batchrun.planner.lock import lock_path, read_lock
from batchrun.spec.load import Spec
from batchrun.spec.revision import GitState, git_state


@dataclass(frozen=True)
class Provenance:
    """Where a dataset came from, as its card's metadata and `EXPORT_RECORD` say."""

    spec: str | None  # the spec's path in its git repository, else its file name
    spec_sha256: str | None
    git: GitState | None
    lock: dict[str, Any] | None  # {path, sha256, pins: {model: version}}; None: no lock
    license: str | None
    batchrun_version: str
    exported_at: str

    def to_json(self) -> dict[str, Any]:
        git = self.git
        return {
            "spec": {"path": self.spec, "sha256": self.spec_sha256} if self.spec else None,
            "git": {"commit": git.commit, "dirty": git.dirty} if git else None,
            "lock": self.lock,
            "license": self.license,
            "batchrun_version": self.batchrun_version,
            "exported_at": self.exported_at,
        }


def provenance(spec: Spec | None, headers: Sequence[Mapping[str, Any]], version: str) -> Provenance:
    """What an export records of its origin. A path is shown relative to its git repository (or
    as a file name): a published card should not carry the exporter's home folder."""
    if spec is None:
        header = next((h for h in headers if h.get("spec")), {})
        named = PurePath(str(header["spec"])).name if header else None
        sha = header.get("spec_sha256") if header else None
        return Provenance(named, sha, None, None, None, version, utcnow())
    git = git_state(spec.path)
    shown = git.path if git else spec.path.name
    return Provenance(
        spec=shown,
        spec_sha256=spec.sha256,
        git=git,
        lock=_lock_of(spec, posixpath.dirname(shown)),
        license=spec.license,
        batchrun_version=version,
        exported_at=utcnow(),
    )


def _lock_of(spec: Spec, folder: str) -> dict[str, Any] | None:
    path = lock_path(spec.path)
    try:
        # Only a regular file in the spec's folder: a lock that is a link elsewhere is not
        # hashed into a card that may be published.
        with safefs.open_regular(path, spec.folder) as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
    try:
        lock = read_lock(spec.path)
        pins = {p.model: p.version for p in lock.pins.values()} if lock else {}
    except BatchrunError:
        pins = {}  # a lock that does not read is still named, with its sha256
    return {
        "path": posixpath.join(folder, path.name),
        "sha256": digest,
        "pins": pins,
    }
