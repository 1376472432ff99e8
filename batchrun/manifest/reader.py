"""Reading a run folder's journals: one rule, "the newest line of a key wins", for every reader.

The first line of a journal is a header; every later line is the full record of one key at a
change of state. A torn last line (a power cut mid-write) is skipped; an unreadable line anywhere
else is an error, since skipping it could make a prediction run twice. Each shard of a run writes
its own file (`manifest.shard-2-of-4.jsonl`); readers merge them all, and a key's line from
another file wins only when it was written later (each line carries when, `written_ns`).

Three readers share that rule: `load_index`, the compact per-key index a run works from (a
million keys must fit in memory), `table.load_table`, a few numbers per key in arrays for the
commands that read a run (status, report, export, verify, plan), and `load_records`, every key's
full record (for small folders: `report --compare`, the Python API's results).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from batchrun import safefs
from batchrun.errors import ManifestError
from batchrun.manifest.records import (
    FORMAT,
    WRITTEN,
    Record,
    Status,
    parse_status,
    sandbox_of,
    spent_of,
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
    prediction_id: str | None
    completed_at: str | None
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
    states: dict[str, KeyState] = field(default_factory=dict)
    lines: int = 0
    torn_lines: int = 0

    @property
    def spent(self) -> float:
        """What every prediction the run folder recorded has cost (USD, estimated)."""
        return sum(state.spent for state in self.states.values())

    def record(self, key: str) -> Record:
        """The full last record of `key`, read back from its journal."""
        state = self.states[key]
        path = self.paths[state.source]
        try:
            with path.open("rb") as journal:
                journal.seek(state.offset)
                line = journal.read(state.length)
            return Record.from_json(json.loads(line))
        except (OSError, ValueError, KeyError, TypeError) as error:
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


def iter_journal(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """(offset, length, object) for each line of one journal, its header first (checked).

    A torn last line is skipped; an unreadable line anywhere else is a ManifestError.
    """
    try:
        # A regular file only: a manifest planted as a FIFO or a link to /dev/zero would
        # hang `status` or fill memory.
        handle = safefs.open_regular(path, None, follow=True)
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None
    with handle:
        offset = 0
        number = 0
        for raw in handle:
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
    length, object, written_ns), collecting the headers and counting the lines and torn ends."""

    paths: list[Path]
    headers: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    torn: int = 0

    def __iter__(self) -> Iterator[tuple[int, int, int, dict[str, Any], int]]:
        for source, path in enumerate(self.paths):
            size = path.stat().st_size
            read_up_to = 0
            for offset, length, data in iter_journal(path):
                read_up_to = offset + length
                if "batchrun_manifest" in data:
                    self.headers.append(data)
                    continue
                self.lines += 1
                yield source, offset, length, data, _written(data)
            if read_up_to < size:
                self.torn += 1


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
        except (KeyError, TypeError, ValueError):
            path = paths[source]
            raise ManifestError(f"{path}: a malformed record for key {key!r}") from None
    return journals.headers, kept, journals.lines, journals.torn


def load_index(run_dir: Path) -> ManifestIndex:
    """Read every journal in a run folder into a compact per-key index."""
    index = ManifestIndex(paths=manifest_paths(run_dir))
    index.headers, index.states, index.lines, index.torn_lines = read_newest(
        index.paths, _key_state, _state_stamp
    )
    return index


def load_records(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Record]]:
    """Every journal's header, and the full last record of each key (for status and report)."""
    headers, kept, _, _ = read_newest(manifest_paths(run_dir), _stamped_record, _record_stamp)
    return headers, {key: record for key, (_, _, record) in kept.items()}


def _written(data: Mapping[str, Any]) -> int:
    value = data.get(WRITTEN)
    return value if isinstance(value, int) else 0


def _key_state(
    data: dict[str, Any], source: int, offset: int, length: int, written: int
) -> KeyState:
    files = tuple(
        (str(f["path"]), int(f["bytes"]), str(f["sha256"])) for f in data.get("files") or ()
    )
    version = data.get("version")
    template = data.get("files_template")
    return KeyState(
        status=parse_status(data["status"]),
        job=sys.intern(str(data.get("job") or "")),  # a few job ids shared by many keys
        prediction_id=data.get("prediction_id"),
        completed_at=data.get("completed_at"),
        files=files,
        missing=bool(data.get("missing")),
        source=source,
        offset=offset,
        length=length,
        written=written,
        # A few versions shared by many keys, like job ids.
        version=sys.intern(version) if isinstance(version, str) else None,
        # One template shared by every key: interned, it costs a pointer per key.
        files_template=sys.intern(template) if isinstance(template, str) else None,
        sandbox=sandbox_of(data),
        not_created=data.get("not_created") is True,
        spent=spent_of(data),
    )


def _state_stamp(state: KeyState) -> tuple[int, int]:
    return state.source, state.written


_Stamped = tuple[int, int, Record]


def _stamped_record(
    data: dict[str, Any], source: int, offset: int, length: int, written: int
) -> _Stamped:
    return source, written, Record.from_json(data)


def _record_stamp(stamped: _Stamped) -> tuple[int, int]:
    return stamped[0], stamped[1]
