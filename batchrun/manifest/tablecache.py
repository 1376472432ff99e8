"""A run folder's `KeyTable` kept on disk between commands: only what was appended is parsed.

Reading 50,000 journal lines (one `json.loads` each, a row built from each) was most of what a
no-op `run` or `status` did. The journals are append-only between compactions, so a table read
from a journal's first N bytes still says what those N bytes say while the journal is the same
file and only grew. `status`, `verify`, `run` and `report` (with the variables' columns it
needs, which `status` keeps where that reads no more lines: `table.load_table`, and the others
pass over) write the table they read into `TABLE_CACHE`,
with, per journal, its name, identity (device, inode), the end it was read up to, the lines
before that end, and the sha256 of its first `HEAD_CHECKED` bytes (the header) and of the
`TAIL_CHECKED` bytes before that end. The next reader takes the table from it when each journal
still matches, and parses only the lines after each end. A journal compacted (a new file),
cut short, rewritten or edited where the hashes look, a journal added or removed, another
batchrun version or machine: the file is not used, and the journals are read whole.

Those checks look at a journal's identity and ends, not at every byte, which `verify` (whose
word is a proof) cannot take. So each journal's mark also keeps the sha256 of exactly the bytes
the table was parsed from, in pieces (`JournalMark.pieces`: the lines one read parsed, hashed as
they were parsed, `reader.iter_journal`). `verify` hashes the journal's bytes again (`proved`: a
gigabyte a second, against a minute to parse a million lines) and takes the table only when
every piece is the same: the table is then the parse of exactly those bytes.

The run folder may come from anyone, so the file is plain data, never pickle: a JSON line and
arrays of numbers. One that does not parse, or that holds a number out of its bounds, is
ignored as if it were not there (`tablestore.py` checks the bounds); it is a cache, never more
trusted than the journal it describes, and a record read back whose key is not the one asked
for is an error (`KeyTable.record_at`).

    file: MAGIC, then one JSON line (`meta`), then the arrays' bytes in the order it lists
    ([name, count, typecode] each; a reader passes over those it does not want)
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from batchrun import safefs
from batchrun._version import __version__
from batchrun.errors import StorageError

TABLE_CACHE = ".batchrun-table.bin"
MAGIC = b"batchrun-table 5\n"
# The header (the first line) is hashed whole in all but odd journals: about 300 bytes.
HEAD_CHECKED = 4096
# A table holds about 110 bytes a line and its files' paths and sha256s, less than the line
# itself (a record is 300 bytes and more): twice the journals' size, and a little, is room.
CACHE_PER_JOURNAL_BYTE = 2
CACHE_SLACK = 1 << 20
# What was appended last before the end read: an edit or a rewrite of the journal shows there
# (a compaction makes a new file, which its inode shows first).
TAIL_CHECKED = 4096
# Each read that parses lines appended to a journal adds a piece to its digest; past this many,
# the pieces are dropped (the next `verify` reads the journal whole, and keeps one piece).
MOST_PIECES = 64
PROOF_READ = 1 << 20  # bytes a read while a journal's pieces are hashed again
TYPECODES = "BHIQqd"  # what an array of the file may hold


@dataclass(frozen=True)
class JournalMark:
    """Where a journal was read up to, and what says it is still that journal."""

    name: str
    device: int
    inode: int
    end: int  # the offset just past the last line read
    lines: int  # lines before `end`, the header included
    head: str  # sha256 of the first min(end, HEAD_CHECKED) bytes
    tail: str  # sha256 of the min(end, TAIL_CHECKED) bytes before `end`
    # The sha256 of the bytes before `end`, in pieces: (where a piece ends, its sha256), each
    # piece from the end of the one before (the first from 0), the last ending at `end`. Empty:
    # not known (more than MOST_PIECES), and no proof of the table.
    pieces: tuple[tuple[int, str], ...] = ()

    def to_json(self) -> list[Any]:
        pieces = [list(piece) for piece in self.pieces]
        return [
            self.name,
            self.device,
            self.inode,
            self.end,
            self.lines,
            self.head,
            self.tail,
            pieces,
        ]


def mark(
    path: Path, handle: BinaryIO, end: int, lines: int, pieces: tuple[tuple[int, str], ...]
) -> JournalMark:
    """The mark of a journal (open as `handle`) read up to `end`, after `lines` lines, whose
    bytes before `end` hash to `pieces` (see `JournalMark`)."""
    found = os.fstat(handle.fileno())
    head, tail = _hashes(handle, end)
    if len(pieces) > MOST_PIECES:
        pieces = ()
    return JournalMark(path.name, found.st_dev, found.st_ino, end, lines, head, tail, pieces)


def pieces_after(
    known: tuple[tuple[int, str], ...], start: int, end: int, digest: str
) -> tuple[tuple[int, str], ...]:
    """A journal's pieces once the lines from `start` to `end` (whose bytes hash to `digest`)
    are read after those `known` stand for (none known: `start` is 0, or no proof)."""
    if end == start:
        return known
    if start and not known:
        return ()  # the bytes before `start` are not known: no piece after them proves them
    return (*known, (end, digest))


def still(known: JournalMark, path: Path, handle: BinaryIO) -> bool:
    """Whether the journal open as `handle` is the one `known` describes, grown or not."""
    return _same_file(known, path, handle) and _hashes(handle, known.end) == (
        known.head,
        known.tail,
    )


def proved(known: JournalMark, path: Path, handle: BinaryIO) -> bool:
    """Whether the journal open as `handle` is the one `known` describes and holds, before
    `known.end`, exactly the bytes the table was parsed from: every piece hashed again.

    The file's identity is asked too: the digests say the bytes are those a table was parsed
    from, but it is the table file that says it was, and one in a folder copied from anyone
    (another inode) is not taken for that."""
    pieces = known.pieces
    if not pieces or pieces[-1][0] != known.end or not _same_file(known, path, handle):
        return False
    fd = handle.fileno()
    at = 0
    for end, digest in pieces:
        if end <= at:
            return False
        hashed = hashlib.sha256()
        while at < end:
            read = os.pread(fd, min(PROOF_READ, end - at), at)
            if not read:
                return False
            hashed.update(read)
            at += len(read)
        if hashed.hexdigest() != digest:
            return False
    return True


def _same_file(known: JournalMark, path: Path, handle: BinaryIO) -> bool:
    """The journal's name and identity as marked, and at least as long as it was read."""
    found = os.fstat(handle.fileno())
    if (path.name, found.st_dev, found.st_ino) != (known.name, known.device, known.inode):
        return False
    return found.st_size >= known.end


def _hashes(handle: BinaryIO, end: int) -> tuple[str, str]:
    fd = handle.fileno()
    head = os.pread(fd, min(end, HEAD_CHECKED), 0)
    tail_size = min(end, TAIL_CHECKED)
    tail = os.pread(fd, tail_size, end - tail_size)
    return hashlib.sha256(head).hexdigest(), hashlib.sha256(tail).hexdigest()


@dataclass
class Cached:
    """A table cache as read: its JSON part, the journals it read, and its arrays by name."""

    meta: dict[str, Any]
    journals: list[JournalMark]
    arrays: dict[str, array[Any]]


def read(
    run_dir: Path, typecodes: dict[str, str], most: int, *, others: bool = False
) -> Cached | None:
    """The run folder's table cache, if there is one this code wrote, with the arrays
    `typecodes` names (name → typecode); None otherwise (whatever is wrong with it). Its other
    arrays (a table's variables) are read when `others`, else passed over. One larger than
    `most` bytes is not read: a folder from anyone cannot make a reader hold a file of any
    size."""
    try:
        with safefs.open_regular(run_dir / TABLE_CACHE, run_dir) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > most:
                return None
            return _parse(handle, size, typecodes, others)
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None


def _parse(handle: BinaryIO, size: int, typecodes: dict[str, str], others: bool) -> Cached | None:
    """The cache read from `handle` (`size` bytes): each array straight from the file into its
    array (`array.fromfile`), never the whole file in one bytes object first, which at a million
    keys doubled the reader's peak."""
    if handle.read(len(MAGIC)) != MAGIC:
        return None
    line = handle.readline(size)
    if not line.endswith(b"\n"):
        return None
    meta = json.loads(line)
    if not isinstance(meta, dict):
        return None
    if meta.get("version") != __version__ or meta.get("byteorder") != sys.byteorder:
        return None
    journals = [_journal(item) for item in meta["journals"]]
    listed = meta["arrays"]
    if not set(typecodes) <= {name for name, _, _ in listed}:
        return None
    arrays: dict[str, array[Any]] = {}
    at = len(MAGIC) + len(line)
    for name, count, typecode in listed:
        if typecodes.get(name, typecode) != typecode or typecode not in TYPECODES:
            return None
        made = array(typecode)
        length = int(count) * made.itemsize
        if length < 0 or at + length > size or name in arrays:
            return None
        if name in typecodes or others:
            made.fromfile(handle, int(count))  # EOFError if the file is shorter than it said
            arrays[name] = made
        else:
            handle.seek(length, os.SEEK_CUR)
        at += length
    if handle.tell() != at:
        return None
    if at != size or handle.read(1):
        return None
    return Cached(meta, journals, arrays)


def _journal(item: Any) -> JournalMark:
    name, device, inode, end, lines, head, tail, listed = item
    fields = (name, device, inode, end, lines, head, tail, listed)
    kinds = (str, int, int, int, int, str, str, list)
    if not all(type(value) is kind for value, kind in zip(fields, kinds, strict=True)):
        raise TypeError("a journal mark of the wrong shape")
    if end < 0 or lines < 0:
        raise ValueError("a journal mark out of bounds")
    pieces = tuple((piece_end, digest) for piece_end, digest in listed)
    if not all(type(at) is int and type(digest) is str for at, digest in pieces):
        raise TypeError("a journal's digest of the wrong shape")
    return JournalMark(name, device, inode, end, lines, head, tail, pieces)


def write(
    run_dir: Path, meta: dict[str, Any], journals: list[JournalMark], arrays: dict[str, array[Any]]
) -> None:
    """Write the table cache atomically (a temporary renamed into place, the run folder's rule
    for every file: `safefs`); a folder that cannot take it keeps none, or its old one."""
    whole = {
        **meta,
        "version": __version__,
        "byteorder": sys.byteorder,
        "journals": [journal.to_json() for journal in journals],
        "arrays": [[name, len(values), values.typecode] for name, values in arrays.items()],
    }
    # ASCII: a header may hold a lone surrogate (escaped in its line), which UTF-8 cannot.
    line = json.dumps(whole, separators=(",", ":")).encode()
    try:
        with safefs.atomic_writer(run_dir / TABLE_CACHE, run_dir) as handle:
            handle.write(MAGIC + line + b"\n")
            for values in arrays.values():
                values.tofile(handle)  # in blocks: no copy of the table in memory
    except (OSError, StorageError):
        return
