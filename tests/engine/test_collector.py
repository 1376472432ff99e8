"""The collector: the one writer of the manifest, and the tally the progress display reads."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from batchrun.engine.collector import FAILURES_KEPT, Collector, Tally, open_journal
from batchrun.manifest.reader import load_records
from batchrun.manifest.records import FileRecord, Record, Status
from batchrun.manifest.table import load_index
from batchrun.manifest.writer import ManifestWriter, new_header

pytestmark = pytest.mark.anyio


def record(key: str, status: Status, **changes: object) -> Record:
    base = Record(
        key=key,
        job="img",
        target={"model": "acme/painter"},
        input={"prompt": key},
        vars={},
        repeat=0,
        status=status,
    )
    return base.replace(**changes)


def open_writer(run: Path) -> ManifestWriter:
    header = new_header(spec_path=run / "s.yaml", spec_sha256="0" * 64, name="s", shard=None)
    return ManifestWriter.open(run / "manifest.jsonl", header, load_index(run))


async def test_a_durable_record_is_on_disk_before_its_writer_goes_on(tmp_path: Path) -> None:
    writer = open_writer(tmp_path)
    tally = Tally(total=1)
    journal, receive = open_journal()
    seen: list[int] = []  # in flight, each time the display was told
    collector = Collector(writer, tally, on_change=lambda t: seen.append(t.in_flight))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(collector.run, receive)
        await journal.write(record("a", Status.SUBMITTING), durable=True)
        # Returned: the line is in the file, flushed (the create may be sent now).
        assert load_records(tmp_path)[1]["a"].status == Status.SUBMITTING
        assert tally.in_flight == 1
        await journal.write(record("a", Status.SUCCEEDED), final=True, durable=True)
        journal.close()
    await collector.final_sync()
    assert load_records(tmp_path)[1]["a"].status == Status.SUCCEEDED
    assert (tally.in_flight, tally.succeeded, tally.done) == (0, 1, 1)
    assert seen == [1, 0]


async def test_the_tally_counts_finals_failures_and_withdrawn_keys(tmp_path: Path) -> None:
    writer = open_writer(tmp_path)
    tally = Tally()
    journal, receive = open_journal()
    png = FileRecord("https://f/a.png", "img/a.png", "00" * 32, 100)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(Collector(writer, tally).run, receive)
        await journal.write(record("a", Status.SUBMITTING))
        await journal.write(
            record("a", Status.SUCCEEDED, files=(png,), metrics={"predict_time": 1.5}), final=True
        )
        await journal.write(record("b", Status.SUBMITTING))
        await journal.write(record("b", Status.FAILED, error="out of memory"), final=True)
        await journal.write(record("c", Status.SUBMITTING))
        await journal.write(record("c", Status.SUBMITTING), final=True, withdrawn=True)
        await journal.write(
            record("d", Status.SUCCEEDED, missing=("https://f/d.png",), possible_duplicate=True),
            final=True,
        )
        journal.close()
    writer.close()
    assert tally.finished == {Status.SUCCEEDED: 2, Status.FAILED: 1}
    assert (tally.succeeded, tally.failed, tally.done, tally.in_flight) == (2, 1, 3, 0)
    assert (tally.files, tally.bytes, tally.missing_files) == (1, 100, 1)
    assert tally.predict_time == 1.5
    assert tally.possible_duplicates == 1
    # Missing files count as a failure (downloads were asked for); a withdrawn key does not.
    assert tally.failure_count == 2
    assert [(f.key, f.status, f.error) for f in tally.failures] == [
        ("b", Status.FAILED, "out of memory"),
        ("d", Status.SUCCEEDED, Status.SUCCEEDED),
    ]
    assert set(load_records(tmp_path)[1]) == {"a", "b", "c", "d"}


async def test_without_downloads_missing_files_are_no_failure(tmp_path: Path) -> None:
    tally = Tally()
    journal, receive = open_journal()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(
            Collector(open_writer(tmp_path), tally, missing_is_failure=False).run, receive
        )
        await journal.write(record("d", Status.SUCCEEDED, missing=("https://f/d",)), final=True)
        journal.close()
    assert (tally.failure_count, tally.missing_files) == (0, 1)


async def test_failures_beyond_those_kept_are_still_counted(tmp_path: Path) -> None:
    tally = Tally()
    journal, receive = open_journal()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(Collector(open_writer(tmp_path), tally).run, receive)
        for number in range(FAILURES_KEPT + 5):
            await journal.write(record(f"k{number}", Status.ERROR, error="422"), final=True)
        journal.close()
    assert tally.failure_count == FAILURES_KEPT + 5
    assert len(tally.failures) == FAILURES_KEPT
