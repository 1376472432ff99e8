"""Reading a run folder's journals: one rule, "the newest line of a key wins", for every reader.

The first line of a journal is a header; every later line is the full record of one key at a
change of state. A torn last line (a power cut mid-write) is skipped; an unreadable line anywhere
else is an error, since skipping it could make a prediction run twice. Each shard of a run writes
its own file (`manifest.shard-2-of-4.jsonl`); readers merge them all, and a key's line from
another file wins only when it was written later (each line carries when, `written_ns`).

Two readers share that rule: `table.load_table`, a few numbers per key in arrays for the
commands that read a run (status, report, export, verify, plan) and, as `table.load_index`,
the per-key index a run works from (a million keys must fit in memory); and `load_records`,
every key's full record (for small folders: `report --compare`, the Python API's results).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

from batchrun import safefs
from batchrun.errors import ManifestError
from batchrun.manifest.records import (
    FORMAT,
    MALFORMED,
    WRITTEN,
    Record,
    Status,
)

MANIFEST_NAME = "manifest.jsonl"

FileCheck = tuple[str, int, str]  # a recorded file's path, size and sha256


@dataclass(slots=True)
class KeyState:
    """What deciding a key's state needs, and where its whole record is.

    A run over a million keys cannot keep a million full records (inputs, outputs, URLs) in
    memory: the index keeps what sorts keys into done, to poll, to download or to create, and
    `ManifestIndex.record` reads the rest back from the journal for the few keys worked on.
    """

    status: Status
    job: str
    prediction_id: str | None  # the API's id of a key in flight (`ManifestIndex.owned_ids`)
    # When it completed, microseconds since the epoch; None: no time, or one without a zone.
    completed: int | None
    files: tuple[FileCheck, ...]
    missing: bool  # some output files were never downloaded
    # Where the key's last line is: which journal, its offset and length, and when it was written.
    source: int
    offset: int
    length: int
    written: int = 0
    version: str | None = None  # the model version that ran it (stale once the lock moves on)
    files_template: str | None = None  # the `files` template that named its files
    # Whether the sandbox made it (records.Api); None: written before the origin was kept.
    sandbox: bool | None = None
    not_created: bool = False  # no prediction exists: the key counts as not started
    spent: float = 0.0  # what the key's predictions cost, USD estimated (records.Record.spent)


@dataclass
class ManifestIndex:
    """Every key of a run folder's manifests, merged; a key's newest line wins."""

    paths: list[Path]
    headers: list[dict[str, Any]] = field(default_factory=list)
    # A mapping, not necessarily a dict: `table.load_index` draws each key's from its table.
    states: Mapping[str, KeyState] = field(default_factory=dict)
    lines: int = 0
    torn_lines: int = 0
    spent: float = 0.0  # what every prediction the run folder recorded has cost (USD, estimated)

    def record(self, key: str) -> Record:
        """The full last record of `key`, read back from its journal."""
        state = self.states[key]
        path = self.paths[state.source]
        try:
            with path.open("rb") as journal:
                journal.seek(state.offset)
                line = journal.read(state.length)
        except OSError as error:
            raise ManifestError(f"{path}: cannot read the record of {key} again: {error}") from None
        return record_read_back(path, key, line)

    def owned_ids(self) -> list[str]:
        """The prediction id of every key's newest line: what the keys of this run folder own.

        Read back with one pass over the journals when asked (a lost create is looked for,
        `engine/reconcile.py`), not kept for every key of a run that never needs them."""
        _, kept, _, _ = read_newest(self.paths, _stamped_id, _id_stamp)
        return [prediction_id for _, _, prediction_id in kept.values() if prediction_id]


def line_read_back(path: Path, key: str, raw: bytes) -> dict[str, Any]:
    """The object of `key`'s line read back from `path` where an index or a table placed it,
    checked to be `key`'s: a journal changed since it was read (or a table kept on disk that
    lies about it) is an error, never another key's line."""
    try:
        data = json.loads(raw)
        found = data["key"]
    except MALFORMED as error:
        raise ManifestError(f"{path}: cannot read the record of {key} again: {error}") from None
    if str(found) != key:
        raise ManifestError(f"{path}: cannot read the record of {key} again: moved")
    return data  # type: ignore[no-any-return]


def record_read_back(path: Path, key: str, raw: bytes) -> Record:
    """`line_read_back`, as the key's `Record`."""
    return record_of_line(path, key, line_read_back(path, key, raw))


def record_of_line(path: Path, key: str, data: Mapping[str, Any]) -> Record:
    """The `Record` of `key`'s line read back from `path` (`line_read_back`)."""
    try:
        return Record.from_json(data)
    except MALFORMED as error:
        raise ManifestError(f"{path}: cannot read the record of {key} again: {error}") from None


def manifest_name(shard: tuple[int, int] | None) -> str:
    """The journal's file name for a shard (1-based index, count), or for an unsharded run."""
    if shard is None:
        return MANIFEST_NAME
    index, count = shard
    return f"manifest.shard-{index}-of-{count}.jsonl"


def manifest_paths(run_dir: Path) -> list[Path]:
    """Every manifest file in a run folder, the unsharded one first, then shards in order."""
    found = sorted(run_dir.glob("manifest.shard-*.jsonl"))
    plain = run_dir / MANIFEST_NAME
    return [plain, *found] if plain.exists() else found


def open_journal(path: Path) -> BinaryIO:
    """A journal opened to read: a regular file only (a manifest planted as a FIFO or a link to
    /dev/zero would hang `status` or fill memory)."""
    try:
        return safefs.open_regular(path, None, follow=True)
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None


class Digest(Protocol):
    """What hashes the bytes of the lines read (a `hashlib` object)."""

    def update(self, data: bytes, /) -> None: ...


def iter_journal(
    path: Path,
    handle: BinaryIO | None = None,
    start: int = 0,
    number: int = 0,
    digest: Digest | None = None,
    stop: int | None = None,
) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(offset, length, object) for each line of one journal, its header first (checked).

    A torn last line is skipped; an unreadable line anywhere else is a ManifestError.
    `handle`: the journal, opened already (`open_journal`; left open), read from `start`, the
    offset of line `number + 1` (a table kept on disk parsed the lines before it:
    `manifest/tablecache.py`). `digest`: fed the bytes of each line yielded, exactly what was
    parsed (a torn last line skipped is not).
    """
    own = handle is None
    if handle is None:
        handle = open_journal(path)
    with handle if own else contextlib.nullcontext(handle):
        handle.seek(start)
        offset = start
        for raw in handle:
            if stop is not None and offset >= stop:
                break
            number += 1
            start, offset = offset, offset + len(raw)
            try:
                data = json.loads(raw.decode())  # str: json.loads(bytes) first guesses the encoding
                if not isinstance(data, dict):
                    raise TypeError
            except (ValueError, TypeError):
                if not raw.endswith(b"\n"):
                    continue  # a torn last line: the write it belonged to never finished
                raise ManifestError(f"{path}:{number}: unreadable manifest line") from None
            if digest is not None:
                digest.update(raw)
            if number == 1:
                if data.get("batchrun_manifest") != FORMAT:
                    raise ManifestError(
                        f"{path}:1: not a batchrun manifest (its first line should be a header "
                        f'with "batchrun_manifest": {FORMAT})'
                    )
                yield start, len(raw), data
                continue
            if "key" not in data or "status" not in data:
                raise ManifestError(f"{path}:{number}: a record needs a key and a status")
            yield start, len(raw), data


T = TypeVar("T")
# What a reader keeps of one line: from its object, journal number, offset, length and stamp.
Keep = Callable[[dict[str, Any], int, int, int, int], T]


def supersedes(known: tuple[int, int], source: int, written: int) -> bool:
    """Whether a key's line in journal `source`, written at `written`, wins over the line kept
    for it, from journal `known[0]`, written at `known[1]`: within one journal a later line
    always wins (it was appended later); across journals (shards, and unsharded runs over the
    same folder) the line written later wins, not the file that sorts last."""
    known_source, known_written = known
    return known_source == source or written >= known_written


@dataclass
class Journals:
    """Every record line of a run folder's journals in order, as (journal number, offset,
    length, object, written_ns), collecting the headers and counting the lines and torn ends.

    `handles` and `starts`: each journal opened already, and where to begin reading it (offset,
    lines before it); `ends` then holds, per journal, where its last line read ends (a torn
    one aside), and `lines_before` how many lines that is. (A last line whose newline was never
    written but which parses is read as whole: nothing is appended after it before the next
    run's compaction rewrites the journal, newline included.) `digests`: one per journal, fed
    the bytes of the lines read from it (`iter_journal`).

    Two processes read one folder's lines in two halves (`twoparse.py`): `stop`, (journal,
    offset of a line), ends the first before that line (no later journal read); `first`, the
    journal the second begins with (its start in `starts` is that line's, and the lines before
    it). `ends` and `lines_before` then hold the journals read, from `first` on."""

    paths: list[Path]
    headers: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    torn: int = 0
    handles: list[BinaryIO] | None = None
    starts: list[tuple[int, int]] | None = None
    digests: Sequence[Digest] | None = None
    ends: list[int] = field(default_factory=list)
    lines_before: list[int] = field(default_factory=list)
    first: int = 0
    stop: tuple[int, int] | None = None
    _opened: list[BinaryIO] = field(default_factory=list, repr=False)

    def __iter__(self) -> Iterator[tuple[int, int, int, dict[str, Any], int]]:
        last, stop_at = self.stop if self.stop is not None else (len(self.paths) - 1, None)
        for source in range(self.first, last + 1):
            path = self.paths[source]
            stop = stop_at if source == last else None
            if self.handles is not None:
                handle = self.handles[source]
            else:
                handle = open_journal(path)
                self._opened.append(handle)
            start, number = self.starts[source] if self.starts is not None else (0, 0)
            size = os.fstat(handle.fileno()).st_size
            read_up_to = start
            try:
                digest = self.digests[source] if self.digests is not None else None
                lines = iter_journal(path, handle, start, number, digest, stop)
                for offset, length, data in lines:
                    read_up_to = offset + length
                    number += 1
                    if "batchrun_manifest" in data:
                        self.headers.append(data)
                        continue
                    self.lines += 1
                    yield source, offset, length, data, _written(data)
            finally:
                for opened in self._opened:
                    opened.close()
                self._opened.clear()
            if read_up_to < (size if stop is None else stop):
                self.torn += 1
            self.ends.append(read_up_to)
            self.lines_before.append(number)


def read_newest(
    paths: list[Path], keep: Keep[T], stamp: Callable[[T], tuple[int, int]]
) -> tuple[list[dict[str, Any]], dict[str, T], int, int]:
    """Headers, what `keep` made of each key's newest line, the record lines read, torn lines.

    `stamp(kept)` gives back the (journal number, written_ns) of what was kept; the newest
    line is the one that `supersedes` the others. Lines written before stamps existed count as
    written at 0.
    """
    kept: dict[str, T] = {}
    journals = Journals(paths)
    for source, offset, length, data, written in journals:
        key = str(data["key"])
        known = kept.get(key)
        if known is not None and not supersedes(stamp(known), source, written):
            continue
        try:
            kept[key] = keep(data, source, offset, length, written)
        except MALFORMED:
            path = paths[source]
            raise ManifestError(f"{path}: a malformed record for key {key!r}") from None
    return journals.headers, kept, journals.lines, journals.torn


def load_records(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Record]]:
    """Every journal's header, and the full last record of each key (for status and report)."""
    headers, kept, _, _ = read_newest(manifest_paths(run_dir), _stamped_record, _record_stamp)
    return headers, {key: record for key, (_, _, record) in kept.items()}


def _written(data: Mapping[str, Any]) -> int:
    value = data.get(WRITTEN)
    return value if isinstance(value, int) else 0


_StampedId = tuple[int, int, str | None]


def _stamped_id(
    data: dict[str, Any], source: int, offset: int, length: int, written: int
) -> _StampedId:
    found = data.get("prediction_id")
    return source, written, found if isinstance(found, str) else None


def _id_stamp(stamped: _StampedId) -> tuple[int, int]:
    return stamped[0], stamped[1]


_Stamped = tuple[int, int, Record]


def _stamped_record(
    data: dict[str, Any], source: int, offset: int, length: int, written: int
) -> _Stamped:
    return source, written, Record.from_json(data)


def _record_stamp(stamped: _Stamped) -> tuple[int, int]:
    return stamped[0], stamped[1]
