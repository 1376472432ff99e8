"""Renaming a recorded file to the path a changed `files` template gives it.

A move never overwrites: a file already at the new path (another key's, or anything else) keeps
it, and the recorded file stays where it is. A new path whose folder resolves outside the run
folder (through a link) is refused the same way. The rename is a hard link then an unlink, so a
file that appears at the new path meanwhile is not replaced either; on a file system without hard
links it is a plain rename after a look at the destination.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from batchrun import safefs
from batchrun.errors import StorageError

# What a file system without hard links (or across devices) answers os.link with.
_NO_LINKS = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK})


def move_file(run_dir: Path, old: str, new: str) -> str | None:
    """Rename run_dir/old to run_dir/new; None once moved, else why it was not (in words)."""
    source, dest = run_dir / old, run_dir / new
    if not safefs.is_inside(dest.parent, run_dir):
        return f"{new} lies outside the run folder (through a link)"
    try:
        if not stat.S_ISREG(os.lstat(source).st_mode):
            return f"{old} is not a regular file"
    except OSError as error:
        return f"{old} cannot be read: {error.strerror or error}"
    if os.path.lexists(dest):
        return f"{new} is taken by another file"
    try:
        safefs.ensure_folder(dest.parent, run_dir)
    except StorageError as error:
        return str(error)
    try:
        _rename_new(source, dest)
    except FileExistsError:
        return f"{new} is taken by another file"
    except OSError as error:
        return f"cannot rename {old} to {new}: {error.strerror or error}"
    safefs.fsync_folder(dest.parent)
    _remove_empty_folders(source.parent, run_dir)
    return None


def _rename_new(source: Path, dest: Path) -> None:
    try:
        os.link(source, dest, follow_symlinks=False)
    except OSError as error:
        if error.errno not in _NO_LINKS:
            raise
        if os.path.lexists(dest):
            raise FileExistsError(errno.EEXIST, "exists", str(dest)) from None
        os.rename(source, dest)
        return
    os.unlink(source)


def _remove_empty_folders(folder: Path, run_dir: Path) -> None:
    # The old template's folders, once emptied, would only clutter the run folder.
    root = os.path.realpath(run_dir)
    while os.path.realpath(folder) != root and safefs.is_inside(folder, run_dir):
        with contextlib.suppress(OSError):
            folder.rmdir()  # only an empty folder goes
        if folder.exists():
            return
        folder = folder.parent
