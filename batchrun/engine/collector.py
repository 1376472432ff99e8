"""The collector: the one task that writes the manifest and keeps the run's tally.

Prediction tasks hand it records through a memory stream. A record that must be on disk before
the task goes on (a `submitting` record, written before its create is sent) carries an Event that
the collector sets once the line is flushed. Each key's last record of the run is marked `final`:
that is when the tally counts it as finished.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from batchrun.errors import secrets_in_use
from batchrun.manifest.records import Record, Status
from batchrun.manifest.writer import ManifestWriter

# What a record says of its key's progress in this run. RETRACTED: a key that ended earlier in
# this run (refused, an `error`) handed back as not created, once later answers showed the
# refusal was its job's, not its own.
PROGRESS, FINAL, WITHDRAWN, RETRACTED = 0, 1, 2, 3
_Entry = tuple[Record, int, anyio.Event | None]  # record, one of the four, flushed
SYNC_EVERY = 1.0  # seconds between fsyncs of the journal while records arrive
FAILURES_KEPT = 20


@dataclass(frozen=True, slots=True)
class Failure:
    """A key that ended badly in this run, for the summary."""

    key: str
    job: str
    status: Status
    error: str


@dataclass
class Tally:
    """Counts of this run's keys, updated by the collector only."""

    total: int = 0
    skipped: int = 0
    in_flight: int = 0
    finished: Counter[Status] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    failure_count: int = 0
    files: int = 0
    bytes: int = 0
    missing_files: int = 0
    predict_time: float = 0.0
    possible_duplicates: int = 0
    retracted: int = 0  # keys that ended, then were handed back as not started (RETRACTED)

    @property
    def succeeded(self) -> int:
        return self.finished[Status.SUCCEEDED]

    @property
    def failed(self) -> int:
        return sum(count for status, count in self.finished.items() if status != Status.SUCCEEDED)

    @property
    def done(self) -> int:
        return sum(self.finished.values())


class Journal:
    """The prediction tasks' handle on the collector."""

    def __init__(self, send: MemoryObjectSendStream[_Entry]) -> None:
        self._send = send

    async def write(
        self,
        record: Record,
        *,
        durable: bool = False,
        final: bool = False,
        withdrawn: bool = False,
        retracted: bool = False,
    ) -> None:
        """Hand a record to the collector; with `durable`, return once it is flushed.

        `final` marks the key's last record of this run; `withdrawn`, a key handed back with
        nothing created (its create never sent, or refused outright), which the tally does not
        count as finished; `retracted`, a key that ended as refused in this run, handed back
        so (its refusal stopped its job), which the tally counts as finished no more.
        """
        kind = RETRACTED if retracted else WITHDRAWN if withdrawn else FINAL if final else PROGRESS
        if not durable:
            self._send.send_nowait((record, kind, None))
            return
        written = anyio.Event()
        self._send.send_nowait((record, kind, written))
        await written.wait()

    def close(self) -> None:
        self._send.close()


def open_journal() -> tuple[Journal, MemoryObjectReceiveStream[_Entry]]:
    """A Journal and the stream the collector reads from."""
    send, receive = anyio.create_memory_object_stream[_Entry](max_buffer_size=math.inf)
    return Journal(send), receive


class Collector:
    """Writes every record, counts what finished, and tells the progress display."""

    def __init__(
        self,
        writer: ManifestWriter,
        tally: Tally,
        on_change: Callable[[Tally], None] = lambda tally: None,
        *,
        missing_is_failure: bool = True,
    ) -> None:
        self.writer = writer
        self.tally = tally
        self._on_change = on_change
        self._missing_is_failure = missing_is_failure
        self._open: set[str] = set()  # keys in flight in this run
        self._new_files = False  # files recorded since the last sync
        self._unsynced = False  # lines written since the last sync

    async def run(self, receive: MemoryObjectReceiveStream[_Entry]) -> None:
        """Consume records until every Journal handle is closed.

        Whatever has queued up is written in one go (one write call for many lines), then the
        tasks that wait for their line are released.
        """
        async with receive:
            ended = False
            while not ended:
                try:
                    batch = [await receive.receive()]
                except anyio.EndOfStream:
                    return
                try:
                    while True:
                        batch.append(receive.receive_nowait())
                except anyio.WouldBlock:
                    pass
                except anyio.EndOfStream:
                    ended = True
                self._write(batch)

    def _write(self, batch: list[_Entry]) -> None:
        self.writer.append_many([record for record, _, _ in batch])
        self._unsynced = True
        for record, kind, written in batch:
            if written is not None:
                written.set()
            self._count(record, kind)
        self._on_change(self.tally)

    async def sync_periodically(self, scope: anyio.CancelScope) -> None:
        """Make what was written durable about once a second, until `scope` is cancelled.

        Its own task, and the disk's work in a worker thread: a sync can take seconds, and
        neither the records still coming nor the creates waiting for theirs may wait for it.
        """
        with scope:
            while True:
                await anyio.sleep(SYNC_EVERY)
                await self._sync()

    async def final_sync(self) -> None:
        """The last sync of the run, then close the journal."""
        try:
            await self._sync()
        finally:
            self.writer.close()

    async def _sync(self) -> None:
        # Downloaded files are not fsynced one by one (see download.py): one sync of the whole
        # system, then the journal, makes every file the manifest names durable with it.
        if not self._unsynced:
            return
        self._unsynced = False
        if self._new_files:
            self._new_files = False
            await anyio.to_thread.run_sync(os.sync, abandon_on_cancel=True)
        await anyio.to_thread.run_sync(self.writer.sync, abandon_on_cancel=True)

    def _retract(self, key: str) -> None:
        # The key was counted once as finished `error`, a failure with no files.
        tally = self.tally
        tally.finished[Status.ERROR] -= 1
        if tally.finished[Status.ERROR] <= 0:
            del tally.finished[Status.ERROR]
        tally.failure_count -= 1
        tally.failures = [failure for failure in tally.failures if failure.key != key]
        tally.retracted += 1

    def _count(self, record: Record, kind: int) -> None:
        tally = self.tally
        if kind == PROGRESS:
            if record.key not in self._open:
                tally.in_flight += 1
                self._open.add(record.key)
            return
        if kind == RETRACTED:
            self._retract(record.key)
            return
        if record.key in self._open:
            tally.in_flight -= 1
            self._open.discard(record.key)
        if kind == WITHDRAWN:
            return
        tally.finished[record.status] += 1
        tally.files += len(record.files)
        self._new_files = self._new_files or bool(record.files)
        tally.bytes += sum(f.bytes for f in record.files)
        tally.missing_files += len(record.missing)
        tally.possible_duplicates += record.possible_duplicate
        predict_time = record.metrics.get("predict_time")
        if isinstance(predict_time, int | float) and not isinstance(predict_time, bool):
            tally.predict_time += float(predict_time)
        if record.status != Status.SUCCEEDED or (record.missing and self._missing_is_failure):
            tally.failure_count += 1
            if len(tally.failures) < FAILURES_KEPT:
                # The summary is a sink (a caller of `run()` may log it): the record itself
                # is kept as the server sent it.
                error = secrets_in_use().text(record.error or record.status)
                tally.failures.append(Failure(record.key, record.job, record.status, error))
