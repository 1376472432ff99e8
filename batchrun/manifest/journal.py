"""The manifest: an append-only journal of every prediction's state, one JSON object per line.

The first line is a header; every later line is the full record of one key at a change of state,
and a reader keeps the last line for each key. A torn last line (a power cut mid-write) is
ignored by readers and cut off before the next append, so it can never glue itself to a good line.
Each shard of a run writes its own file (`manifest.shard-2-of-4.jsonl`); readers merge them all.

Durability: every line is written and flushed at once (it survives `kill -9`); `sync()` forces it
to the disk (it survives a power cut) and is called by the runner about once a second and at exit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no advisory locks; runs are not guarded)
    fcntl = None  # type: ignore[assignment]

from batchrun._version import __version__
from batchrun.errors import ManifestError, StorageError, UsageError
from batchrun.planner.expand import PlannedPrediction

FORMAT = 1
MANIFEST_NAME = "manifest.jsonl"
WRITTEN = "written_ns"  # on every record line: when it was written (ns since the epoch)

# States a record can be in. `submitting` is written before a create is sent; `error` means the
# API refused the request (e.g. 422), so no prediction exists.
IN_FLIGHT = frozenset({"submitting", "starting", "processing"})
FAILED = frozenset({"failed", "canceled", "aborted", "error"})
STATUSES = ("submitting", "starting", "processing", "succeeded", "failed", "canceled", "aborted")
ALL_STATUSES = (*STATUSES, "error")


def utcnow() -> str:
    """The current time as an ISO 8601 string in UTC, as the API writes them."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One downloaded output file; `path` is relative to the run folder."""

    url: str
    path: str
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "path": self.path, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class Record:
    """The state of one planned prediction, as one manifest line holds it."""

    key: str
    job: str
    target: dict[str, str]
    input: dict[str, Any]
    vars: dict[str, Any]
    repeat: int
    status: str
    prediction_id: str | None = None
    version: str | None = None
    output: Any = None
    files: tuple[FileRecord, ...] = ()
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    attempts: int = 0
    # batchrun's own (docs/manifest.md): the sha256 of the input as sent (files resolved), used to
    # find a prediction whose create answer was lost; and a flag for keys that may have run twice
    # because the API had no list endpoint to reconcile with.
    request_sha256: str | None = None
    possible_duplicate: bool = False
    # URLs the output held that could not be downloaded yet (expired links, a full disk...).
    missing: tuple[str, ...] = ()

    def replace(self, **changes: Any) -> Record:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def terminal(self) -> bool:
        return self.status not in IN_FLIGHT

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "job": self.job,
            "target": self.target,
            "input": self.input,
            "vars": self.vars,
            "repeat": self.repeat,
            "status": self.status,
            "prediction_id": self.prediction_id,
            "version": self.version,
            "output": self.output,
            "files": [f.to_json() for f in self.files],
            "error": self.error,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "attempts": self.attempts,
        }
        if self.request_sha256:
            data["request_sha256"] = self.request_sha256
        if self.possible_duplicate:
            data["possible_duplicate"] = True
        if self.missing:
            data["missing"] = list(self.missing)
        return data

    @classmethod
    def planned(cls, planned: PlannedPrediction, status: str = "submitting") -> Record:
        """A fresh record of a planned prediction: the plan's view of it, nothing run yet."""
        data = planned.to_json()
        return cls(
            key=planned.key,
            job=planned.job,
            target=data["target"],
            input=data["input"],
            vars=data["vars"],
            repeat=planned.repeat,
            status=status,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """Read a record line; raises KeyError/TypeError/ValueError on a malformed one."""
        files = tuple(
            FileRecord(str(f["url"]), str(f["path"]), str(f["sha256"]), int(f["bytes"]))
            for f in data.get("files") or ()
        )
        return cls(
            key=str(data["key"]),
            job=str(data["job"]),
            target=dict(data.get("target") or {}),
            input=dict(data.get("input") or {}),
            vars=dict(data.get("vars") or {}),
            repeat=int(data.get("repeat") or 0),
            status=str(data["status"]),
            prediction_id=data.get("prediction_id"),
            version=data.get("version"),
            output=data.get("output"),
            files=files,
            error=data.get("error"),
            metrics=dict(data.get("metrics") or {}),
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            attempts=int(data.get("attempts") or 0),
            request_sha256=data.get("request_sha256"),
            possible_duplicate=bool(data.get("possible_duplicate")),
            missing=tuple(data.get("missing") or ()),
        )


FileCheck = tuple[str, int, str]  # a recorded file's path, size and sha256


@dataclass(slots=True)
class KeyState:
    """What deciding a key's next step needs, and where its whole record is.

    A run over a million keys cannot keep a million full records (inputs, outputs, URLs) in
    memory: the index keeps what sorts keys into done, to poll, to download or to create, and
    `ManifestIndex.record` reads the rest back from the journal for the few keys worked on.
    """

    status: str
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


@dataclass
class ManifestIndex:
    """Every key of a run folder's manifests, merged; a key's line from a later file wins."""

    paths: list[Path]
    headers: list[dict[str, Any]]
    states: dict[str, KeyState]
    lines: int = 0
    torn_lines: int = 0

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
    """(offset, length, object) for each record line of one journal, after checking its header.

    A torn last line is skipped; an unreadable line anywhere else is a ManifestError, since
    skipping it could make a prediction run twice.
    """
    try:
        handle = path.open("rb")
    except OSError as error:
        raise ManifestError(f"cannot read {path}: {error.strerror or error}") from None
    with handle:
        offset = 0
        number = 0
        for raw in handle:
            number += 1
            start, offset = offset, offset + len(raw)
            try:
                data = json.loads(raw)
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


def load_index(run_dir: Path) -> ManifestIndex:
    """Read every journal in a run folder into a compact per-key index."""
    index = ManifestIndex(paths=manifest_paths(run_dir), headers=[], states={})
    for source, path in enumerate(index.paths):
        size = path.stat().st_size
        read_up_to = 0
        for offset, length, data in iter_journal(path):
            read_up_to = offset + length
            if "batchrun_manifest" in data:
                index.headers.append(data)
                continue
            index.lines += 1
            key = str(data["key"])
            written = _written(data)
            known = index.states.get(key)
            if known is None or known.source == source or written >= known.written:
                index.states[key] = _state(data, source, offset, length, written)
        if read_up_to < size:
            index.torn_lines += 1
    return index


def _written(data: Mapping[str, Any]) -> int:
    # Lines carry when they were written, so that across journals (shards, and unsharded runs
    # over the same folder) the newest line of a key wins, not the file that sorts last.
    value = data.get(WRITTEN)
    return value if isinstance(value, int) else 0


def _state(
    data: Mapping[str, Any], source: int, offset: int, length: int, written: int
) -> KeyState:
    files = tuple(
        (str(f["path"]), int(f["bytes"]), str(f["sha256"])) for f in data.get("files") or ()
    )
    return KeyState(
        status=sys.intern(str(data["status"])),
        job=sys.intern(str(data.get("job") or "")),  # a few job ids shared by many keys
        prediction_id=data.get("prediction_id"),
        completed_at=data.get("completed_at"),
        files=files,
        missing=bool(data.get("missing")),
        source=source,
        offset=offset,
        length=length,
        written=written,
    )


def load_records(run_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Record]]:
    """Every journal's header, and the full last record of each key (for status and report)."""
    headers: list[dict[str, Any]] = []
    records: dict[str, Record] = {}
    stamps: dict[str, tuple[int, int]] = {}  # key → (journal number, written)
    for source, path in enumerate(manifest_paths(run_dir)):
        for _, _, data in iter_journal(path):
            if "batchrun_manifest" in data:
                headers.append(data)
            else:
                key, written = str(data.get("key")), _written(data)
                known = stamps.get(key)
                if known is not None and known[0] != source and written < known[1]:
                    continue
                stamps[key] = (source, written)
                try:
                    records[key] = Record.from_json(data)
                except (KeyError, TypeError, ValueError):
                    raise ManifestError(f"{path}: a malformed record for key {key!r}") from None
    return headers, records


def _storage_error(path: Path, error: OSError) -> StorageError:
    reason = error.strerror or str(error)
    return StorageError(f"cannot write the manifest {path}: {reason}")


class ManifestWriter:
    """The journal's only writer: appends records, flushed line by line."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle = handle
        self._dirty = False
        self._last_stamp = 0

    def _stamp(self) -> int:
        # Nanoseconds since the epoch, strictly increasing within this writer.
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return self._last_stamp

    @classmethod
    def open(cls, path: Path, header: Mapping[str, Any], index: ManifestIndex) -> ManifestWriter:
        """Start this run's journal at `path`, atomically: a new header, then the last line of
        every key that `index` read from `path` (compaction), then room for this run's lines.

        Compaction keeps resume fast: a journal grows by several lines per key, and rewriting it
        as one line per key on each run bounds it by the number of keys. Keys no longer in the
        spec are kept: nothing that was paid for is ever dropped.
        """
        tmp = path.with_name(path.name + ".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as out:
                out.write(_line(dict(header)))
                moved = _copy_last_lines(index, path, out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            for state, offset, length in moved:  # the index now points into the new file
                state.offset, state.length = offset, length
            _fsync_dir(path.parent)
            # Unbuffered: each record is one write() of a whole line, with nothing left in a
            # buffer to fail again (or to be lost) when the disk is full.
            handle = path.open("ab", buffering=0)
        except OSError as error:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _storage_error(path, error) from None
        return cls(path, handle)

    def append(self, record: Record) -> None:
        """Write one record and flush it to the OS."""
        self.append_many([record])

    def append_many(self, records: list[Record]) -> None:
        """Write records, whole lines in one write call, and flush them to the OS."""
        try:
            data = memoryview(
                b"".join(_line({**record.to_json(), WRITTEN: self._stamp()}) for record in records)
            )
            while data:
                written = self._handle.write(data)
                data = data[written or 0 :]
        except OSError as error:
            raise _storage_error(self.path, error) from None
        self._dirty = True

    def sync(self) -> None:
        """Force what was written to the disk."""
        if self._dirty:
            try:
                os.fsync(self._handle.fileno())
            except OSError as error:
                raise _storage_error(self.path, error) from None
            self._dirty = False

    def close(self) -> None:
        """Sync and close; safe to call twice."""
        if not self._handle.closed:
            try:
                self.sync()
            finally:
                self._handle.close()


def new_header(
    *, spec_path: Path, spec_sha256: str, name: str, shard: tuple[int, int] | None
) -> dict[str, Any]:
    """The first line of a journal."""
    return {
        "batchrun_manifest": FORMAT,
        "spec": str(spec_path),
        "spec_sha256": spec_sha256,
        "name": name,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "written_at": utcnow(),
        "batchrun_version": __version__,
    }


def _copy_last_lines(
    index: ManifestIndex, path: Path, out: IO[bytes]
) -> list[tuple[KeyState, int, int]]:
    """Copy each key's last line of `path` to `out`; return where each one lands there."""
    if path not in index.paths:
        return []
    source = index.paths.index(path)
    states = sorted(
        (state for state in index.states.values() if state.source == source),
        key=lambda state: state.offset,
    )
    moved: list[tuple[KeyState, int, int]] = []
    with path.open("rb") as journal:
        for state in states:
            journal.seek(state.offset)
            line = journal.read(state.length)
            line = line if line.endswith(b"\n") else line + b"\n"
            moved.append((state, out.tell(), len(line)))
            out.write(line)
    return moved


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold `path`'s journal for this process alone while the block runs.

    Two runs appending to one journal would each compact it (replacing the file under the
    other) and create every prediction twice. Shards have journals of their own, so different
    shards can still share a run folder.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a")
    except OSError as error:
        raise _storage_error(path, error) from None
    with handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"another batchrun run is writing {path}; wait for it to finish, "
                    "or give this one another --out (or another --shard)"
                ) from None
        yield


def _line(data: Mapping[str, Any]) -> bytes:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode() + b"\n"


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder's entry is on disk; not every OS allows it.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
