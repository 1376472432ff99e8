"""Whether a recorded file is as recorded, and what it looked like when it was last hashed.

Checking that a run folder's files are as recorded means hashing them: seconds for a folder of
50,000 files, on every `run`, `status` and `verify`. So the folder keeps, in `FILES_INDEX`, each
file's size, mtime, ctime, inode and device as they were when its bytes last hashed to the
recorded sha256. A file whose stat still says the same is taken as unchanged without reading it;
any other is hashed again (the rule is `file_difference`, below). `--deep` hashes every
file whatever the index says.

A file changed within the same clock tick as its hashing may keep its mtime (git's "racily
clean" entries): an entry is trusted only when the file was last changed RACY_NS before the
index itself was written. The index is a cache: a missing or unreadable one is an empty one, a
line not as this code writes it counts for no file, and it never decides anything the files
themselves would not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

from batchrun import safefs
from batchrun.errors import StorageError

FILES_INDEX = ".batchrun-files.jsonl"
# A file changed this close to the index's writing may have changed again within one tick of a
# coarse clock without its mtime moving: such an entry is hashed again next time.
RACY_NS = 2_000_000_000

# Lines of files fetched again (older lines of one path) an index may hold before it is rewritten.
STALE_LINES_KEPT = 10_000

_Stat = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device

# A line read back is split after its path, and the rest kept as text: an entry counts only when
# that text is what the file's stat and sha256 would write now (`_tail`), so no number is parsed
# (50,000 lines of JSON were a tenth of a no-op `status`). A path that needs no escape is the
# text between its quotes; a line whose path has one is parsed whole (`_ESCAPED`).
_PLAIN = re.compile(r'^\["([^"\\\n]*)",(.*)$', re.MULTILINE)
_ESCAPED = re.compile(r'^\["[^"\n]*\\.*$', re.MULTILINE)


def _tail(found: _Stat, sha256: str) -> str:
    """What follows the path in an index line: `size,mtime_ns,ctime_ns,inode,device,"sha256"]`,
    as json.dumps writes it (a sha256 kept here is what a file hashed to: hex digits)."""
    return f'{found[0]},{found[1]},{found[2]},{found[3]},{found[4]},"{sha256}"]'


def _line(relative: str, tail: str) -> bytes:
    """One line of the index: [path, size, mtime_ns, ctime_ns, inode, device, sha256]."""
    return f"[{json.dumps(relative)},{tail}\n".encode()


def _entries_of(text: str) -> dict[str, str]:
    """Each path of an index's lines, and the text after it on its last line."""
    entries = dict(_PLAIN.findall(text))
    # Searched for only when there is one: a multiline pattern tries every offset of the text.
    for line in _ESCAPED.findall(text) if "\\" in text else ():
        try:
            row = json.loads(line)
        except ValueError:  # a torn last line
            continue
        if type(row) is list and len(row) == 7 and type(row[0]) is str:
            entries[row[0]] = json.dumps(row[1:], separators=(",", ":"))[1:]
    return entries


def _stat_of(found: os.stat_result) -> _Stat:
    return (found.st_size, found.st_mtime_ns, found.st_ctime_ns, found.st_ino, found.st_dev)


class HashedFiles:
    """A run folder's files as last hashed: `difference` reads a file only when its stat moved."""

    def __init__(self, run_dir: Path, *, deep: bool = False) -> None:
        self.run_dir = run_dir
        self.deep = deep
        self.hashed = 0  # files read and hashed
        self.trusted = 0  # files taken as unchanged by their stat
        self._entries: dict[str, str] = {}  # path → the text after it on its index line
        self._written_ns = 0
        self._changed = False  # entries learned by hashing, for `save` to write
        self._appender: BinaryIO | None = None  # where `note` appends (opened on first use)
        self._noted = False  # whether `note` appended lines since the index was read
        self._real_root = os.path.realpath(run_dir)
        self._root = str(run_dir)  # joined as text: a Path per file costs more than its lstat
        self._prefix = os.path.join(self._root, "")
        if not deep:
            self._load()

    def _load(self) -> None:
        path = self.run_dir / FILES_INDEX
        try:
            with safefs.open_regular(path, self.run_dir) as handle:
                self._written_ns = os.fstat(handle.fileno()).st_mtime_ns
                text = handle.read().decode("ascii")  # json.dumps escapes all else
            # A line not as this code writes it (a number as 1.0, a torn last line) matches no
            # file's stat, which is then hashed, and the next `save` writes its line anew.
            self._entries = _entries_of(text)
        except (OSError, ValueError):
            self._entries = {}  # no index, or not one this code wrote: hash what is asked
            return
        # Downloads append their lines (`note`); a file fetched again leaves an older line
        # behind. Once those outnumber the live ones, the next `save` writes the index anew.
        self._changed = text.count("\n") > 2 * len(self._entries) + STALE_LINES_KEPT

    def difference(self, relative: str, size: int, sha256: str) -> str | None:
        """How a recorded file differs from the record, in words; None when it is as recorded
        (see `file_difference`, which this skips when the stat is unchanged)."""
        # No containment check before the stat: a file taken as unchanged is not read, and the
        # same inode, device, size and times are the very file hashed (inside) before. A link
        # is no regular file here (lstat), so it is judged by file_difference, which refuses
        # it, as it checks every file it reads (with the root resolved once).
        try:
            # os.path.join's meaning (an absolute path stands alone), at a third of its cost.
            found = os.lstat(relative if relative[:1] == "/" else self._prefix + relative)
        except (OSError, ValueError):
            found = None
        if found is not None and not stat.S_ISREG(found.st_mode):
            found = None  # a link or a folder: never kept (file_difference refuses it)
        if found is not None:
            # Unchanged: the stat and sha256 the entry holds, and not racy (see RACY_NS).
            entry = self._entries.get(relative)
            if (
                entry is not None
                and found.st_size == size
                and max(found.st_mtime_ns, found.st_ctime_ns) + RACY_NS < self._written_ns
                and entry
                == (  # _tail, inline: once per file of a folder of 50,000
                    f"{found.st_size},{found.st_mtime_ns},{found.st_ctime_ns},"
                    f'{found.st_ino},{found.st_dev},"{sha256}"]'
                )
            ):
                self.trusted += 1
                return None
        self.hashed += 1
        difference = file_difference(
            self.run_dir, relative, size, sha256, real_root=self._real_root
        )
        if difference is None and found is not None:
            self._entries[relative] = _tail(_stat_of(found), sha256)
            self._changed = True
        return difference

    def note(self, relative: str, sha256: str) -> None:
        """A file just written with these bytes (a download): known without hashing it again.

        Its line goes straight to the index (appended), not into memory: a run keeps nothing
        per file it fetched, however many. A later line of a path wins over an earlier one.
        """
        try:
            found = os.lstat(os.path.join(self._root, relative))
            if self._appender is None:
                self._appender = safefs.open_append(self.run_dir / FILES_INDEX, self.run_dir)
            self._appender.write(_line(relative, _tail(_stat_of(found), sha256)))
        except (OSError, StorageError):
            return  # a cache: the file is hashed next time instead
        self._noted = True
        self._entries.pop(relative, None)  # its line on disk is newer than what was loaded

    def save(self) -> None:
        """Write the index anew if hashing learned anything (with the lines `note` appended
        since it was read); a folder that cannot take it keeps none."""
        self._close_appender()
        if not self._changed:
            return
        entries = self._entries
        if self._noted:  # lines on disk that memory does not hold
            entries = {**HashedFiles(self.run_dir)._entries, **entries}
        lines = (_line(relative, tail) for relative, tail in entries.items())
        try:
            safefs.write_atomically(self.run_dir / FILES_INDEX, b"".join(lines), self.run_dir)
        except (OSError, StorageError):
            return
        self._changed = False

    def _close_appender(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None


def file_difference(
    run_dir: Path, relative: str, size: int, sha256: str, *, real_root: str | None = None
) -> str | None:
    """How a recorded file differs from the record, in words; None when it is as recorded.

    Only a regular file inside the run folder counts: a manifest someone edited to name
    /dev/zero, a FIFO or a file elsewhere must not be hashed (forever, or at all). `real_root`:
    the run folder already resolved (`os.path.realpath`), for a caller checking many files.
    """
    try:
        with safefs.open_regular(run_dir / relative, run_dir, real_root=real_root) as handle:
            found = os.fstat(handle.fileno()).st_size
            if found != size:
                return f"{found:,} bytes, recorded {size:,}"
            if hashlib.file_digest(handle, "sha256").hexdigest() != sha256:
                return "its sha256 is not the one recorded (same size, other bytes)"
            return None
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"cannot be read: {error.strerror or error}"
