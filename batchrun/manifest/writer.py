"""Writing the journal: one writer per journal file, appending whole lines, flushed one by one.

Durability: every line is written and flushed at once (it survives `kill -9`); `sync()` forces it
to the disk (it survives a power cut) and is called by the runner about once a second and at exit.
A run starts its journal by compacting it (see `ManifestWriter.open`), and holds it exclusively
for as long as it writes (`exclusive`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections import ChainMap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no advisory locks; runs are not guarded)
    fcntl = None  # type: ignore[assignment]

from batchrun import safefs
from batchrun._version import __version__
from batchrun.errors import Redactor, StorageError, UsageError, refresh_secrets
from batchrun.manifest.reader import KeyState, ManifestIndex
from batchrun.manifest.records import FORMAT, WRITTEN, Api, Record, utcnow


def _storage_error(path: Path, error: OSError) -> StorageError:
    reason = error.strerror or str(error)
    return StorageError(f"cannot write the manifest {path}: {reason}")


class ManifestWriter:
    """The journal's only writer: appends records, flushed line by line.

    `index` is the run folder's index as it stands once the journal is open: after compaction,
    its keys point into the new file. Reading records back goes through it, never through the
    index the writer was opened with, which still points into the file that was replaced.
    """

    def __init__(self, path: Path, handle: IO[bytes], index: ManifestIndex | None = None) -> None:
        self.path = path
        self.index = index if index is not None else ManifestIndex(paths=[path])
        self._handle = handle
        self._dirty = False
        self._last_stamp = 0
        # The manifest is a sink: what a server echoed of the token is redacted in each line.
        self._redactor = refresh_secrets()

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
        spec are kept: nothing that was paid for is ever dropped. `index` is left as it was; the
        writer's `index` is the one that points into the new file.
        """
        # Through safefs: a link planted at the manifest or its temporary is never written through.
        what = "the manifest "
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise _storage_error(path, error) from None
        with safefs.atomic_writer(path, None, durable=True, what=what) as out:
            out.write(encode_line(dict(header), refresh_secrets()))
            moved = _copy_last_lines(index, path, out)
        # Unbuffered: each record is one write() of a whole line, with nothing left in a
        # buffer to fail again (or to be lost) when the disk is full.
        handle = safefs.open_append(path, None, what=what)
        return cls(path, handle, _relocated(index, moved))

    def append(self, record: Record) -> None:
        """Write one record and flush it to the OS."""
        self.append_many([record])

    def append_many(self, records: list[Record]) -> None:
        """Write records, whole lines in one write call, and flush them to the OS."""
        try:
            data = memoryview(
                b"".join(
                    encode_line({**record.to_json(), WRITTEN: self._stamp()}, self._redactor)
                    for record in records
                )
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
    *,
    spec_path: Path,
    spec_sha256: str,
    name: str,
    shard: tuple[int, int] | None,
    api: Api | None = None,
) -> dict[str, Any]:
    """The first line of a journal; `api` is the API the run that writes it talks to."""
    header: dict[str, Any] = {
        "batchrun_manifest": FORMAT,
        "spec": str(spec_path),
        "spec_sha256": spec_sha256,
        "name": name,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "written_at": utcnow(),
        "batchrun_version": __version__,
    }
    if api is not None:
        header["api"] = api.to_json()
    return header


# Header fields a run with nothing to do need not bring up to date: when it ran.
_WHEN = frozenset(("written_at",))


def says_already(path: Path, header: Mapping[str, Any]) -> bool:
    """Whether the journal at `path` starts with `header`, but for when it was written: a run
    with nothing to do over it then writes nothing (no compaction, no new header), since
    every reader would learn from the rewrite only that a run looked."""
    try:
        with safefs.open_regular(path, None, follow=True) as journal:
            first = json.loads(journal.readline())
    except (OSError, ValueError):
        return False
    if not isinstance(first, dict):
        return False
    return {k: v for k, v in first.items() if k not in _WHEN} == {
        k: v for k, v in header.items() if k not in _WHEN
    }


def _copy_last_lines(index: ManifestIndex, path: Path, out: IO[bytes]) -> dict[str, KeyState]:
    """Copy each key's last line of `path` to `out`; return each such key's state as it is
    there (new objects: the index given is not changed)."""
    if path not in index.paths:
        return {}
    source = index.paths.index(path)
    keys = sorted(
        (key for key, state in index.states.items() if state.source == source),
        key=lambda key: index.states[key].offset,
    )
    moved: dict[str, KeyState] = {}
    with path.open("rb") as journal:
        for key in keys:
            state = index.states[key]
            journal.seek(state.offset)
            line = journal.read(state.length)
            line = line if line.endswith(b"\n") else line + b"\n"
            moved[key] = dataclasses.replace(state, offset=out.tell(), length=len(line))
            out.write(line)
    return moved


def _relocated(index: ManifestIndex, moved: dict[str, KeyState]) -> ManifestIndex:
    """A copy of `index` whose moved keys point to where compaction put their lines."""
    # Read only, so a Mapping (the index's may be a table's view) serves as ChainMap's second.
    states = ChainMap(moved, index.states)  # type: ignore[arg-type]
    return dataclasses.replace(index, paths=list(index.paths), states=states)


# Held shared by every run in a run folder, for as long as it runs; held exclusively only while
# a run removes the temporaries a killed run left (`exclusive`), so it never removes a
# temporary another shard's run is writing.
FOLDER_LOCK = ".batchrun-run.lock"


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold `path`'s journal for this process alone while the block runs.

    Two runs appending to one journal would each compact it (replacing the file under the
    other) and create every prediction twice. Shards have journals of their own, so different
    shards can still share a run folder. A run alone in its folder first removes the
    temporaries (`.tmp`, `.part`) a killed run left there (`safefs.remove_temporaries`).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _storage_error(path, error) from None
    # Through safefs: a link planted at the lock's name is refused, never followed.
    with _lock_file(path.with_name(path.name + ".lock")) as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"another batchrun run is writing {path}; wait for it to finish, "
                    "or give this one another --out (or another --shard)"
                ) from None
        with _lock_file(path.parent / FOLDER_LOCK) as folder:
            if fcntl is not None:
                _clean_when_alone(folder, path.parent)
            yield


def _lock_file(path: Path) -> IO[bytes]:
    try:
        return safefs.open_append(path, None, what="the lock ")
    except StorageError as error:
        raise StorageError(f"{error}; remove it and run again") from None


def _clean_when_alone(folder: IO[bytes], run_dir: Path) -> None:
    """Remove stale temporaries if no other run holds the folder, then hold it shared."""
    try:
        fcntl.flock(folder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass  # another shard's run is writing here: its temporaries are not stale
    else:
        safefs.remove_temporaries(run_dir)
    # Blocks only while another run removes temporaries, which takes one walk of the folder.
    fcntl.flock(folder.fileno(), fcntl.LOCK_SH)


def encode_line(data: Mapping[str, Any], redactor: Redactor | None = None) -> bytes:
    """One line of the journal: compact JSON, UTF-8, newline-terminated (the format of every
    line ever written: readers and old journals depend on it byte for byte), with `redactor`'s
    secrets as `***` in its decoded text.

    A record is kept in memory as it came (batchrun acts on it); only the line holds `***`. A
    prediction id never does (the client refuses an id that holds the token); an output URL
    that holds it is stored so, and a later run cannot fetch from it (it expires within the
    hour in any case).
    """
    text = _dumps(data)
    if redactor and redactor.document(text) != text:  # found as written: redact the values
        text = _dumps(redactor.value(data))
    return text.encode() + b"\n"


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
