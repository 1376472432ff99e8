from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from batchrun.errors import ManifestError, StorageError
from batchrun.manifest.reader import (
    ManifestIndex,
    iter_journal,
    load_records,
    manifest_name,
    manifest_paths,
)
from batchrun.manifest.records import WRITTEN, FileRecord, Record
from batchrun.manifest.table import load_index
from batchrun.manifest.writer import ManifestWriter, new_header
from batchrun.manifest.writer import encode_line as writer_line


def record(key: str, status: str, **changes: object) -> Record:
    base = Record(
        key=key,
        job="flux",
        target={"model": "acme/flux"},
        input={"prompt": f"p-{key}"},
        vars={"n": key},
        repeat=0,
        status=status,
    )
    return base.replace(**changes)


def header() -> dict[str, object]:
    return new_header(spec_path=Path("/x/spec.yaml"), spec_sha256="ab" * 32, name="x", shard=None)


def empty_index(run: Path) -> ManifestIndex:
    return load_index(run)


def test_records_round_trip_and_last_line_wins(tmp_path: Path) -> None:
    writer = ManifestWriter.open(tmp_path / "manifest.jsonl", header(), empty_index(tmp_path))
    writer.append(record("a", "submitting"))
    writer.append(record("a", "starting", prediction_id="p1"))
    done = record(
        "a",
        "succeeded",
        prediction_id="p1",
        files=(FileRecord("https://f/x.png", "flux/a-0.png", "00" * 32, 12),),
        metrics={"predict_time": 1.5},
    )
    writer.append(done)
    writer.append(record("b", "failed", prediction_id="p2", error="boom"))
    writer.close()

    headers, records = load_records(tmp_path)
    assert headers[0]["batchrun_manifest"] == 1
    assert records["a"] == done
    assert records["b"].error == "boom"
    index = load_index(tmp_path)
    assert index.lines == 4
    assert index.states["a"].status == "succeeded"
    assert index.states["a"].files == (("flux/a-0.png", 12, "00" * 32),)
    assert index.record("a") == done  # the whole record, read back from the journal
    assert index.torn_lines == 0


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.open(path, header(), empty_index(tmp_path))
    writer.append(record("a", "starting", prediction_id="p1"))
    writer.close()
    with path.open("ab") as handle:
        handle.write(b'{"key":"a","status":"succ')  # the power went out here

    index = load_index(tmp_path)
    assert index.torn_lines == 1
    assert index.states["a"].status == "starting"

    writer = ManifestWriter.open(path, header(), index)
    writer.append(record("b", "succeeded", prediction_id="p2"))
    writer.close()
    lines = path.read_bytes().splitlines()
    assert [json.loads(line).get("key") for line in lines] == [None, "a", "b"]


def test_an_unreadable_line_in_the_middle_is_an_error_not_a_silent_skip(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text(
        json.dumps(header()) + "\nnot json\n" + json.dumps(record("a", "failed").to_json()) + "\n"
    )
    with pytest.raises(ManifestError, match=r"manifest.jsonl:2: unreadable manifest line$"):
        load_index(tmp_path)


def test_a_file_that_is_not_a_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "manifest.jsonl").write_text('{"hello": 1}\n')
    with pytest.raises(ManifestError, match="not a batchrun manifest"):
        list(iter_journal(tmp_path / "manifest.jsonl"))


def test_compaction_keeps_one_line_per_key_including_keys_not_in_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.open(path, header(), empty_index(tmp_path))
    for status in ("submitting", "starting", "processing", "succeeded"):
        writer.append(record("a", status, prediction_id="p1"))
    writer.append(record("gone", "succeeded", prediction_id="p9"))
    writer.close()

    writer = ManifestWriter.open(path, header(), load_index(tmp_path))
    writer.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    _, records = load_records(tmp_path)
    assert {key: r.status for key, r in records.items()} == {"a": "succeeded", "gone": "succeeded"}


def test_shards_have_their_own_files_and_are_read_together(tmp_path: Path) -> None:
    for shard, key in (((1, 2), "a"), ((2, 2), "b")):
        path = tmp_path / manifest_name(shard)
        writer = ManifestWriter.open(path, header(), empty_index(tmp_path))
        writer.append(record(key, "succeeded"))
        writer.close()
    assert [p.name for p in manifest_paths(tmp_path)] == [
        "manifest.shard-1-of-2.jsonl",
        "manifest.shard-2-of-2.jsonl",
    ]
    assert sorted(load_index(tmp_path).states) == ["a", "b"]


def test_a_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way")
    with pytest.raises(StorageError, match=r"^cannot write the manifest .*manifest.jsonl: "):
        ManifestWriter.open(tmp_path / "file" / "manifest.jsonl", header(), empty_index(tmp_path))


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_a_storage_error_naming_the_manifest() -> None:
    with Path("/dev/full").open("ab", buffering=0) as handle:
        writer = ManifestWriter(Path("/dev/full"), handle)
        with pytest.raises(StorageError) as caught:
            writer.append(record("a", "submitting"))
    assert str(caught.value) == "cannot write the manifest /dev/full: No space left on device"


def test_after_compaction_the_index_still_finds_every_record(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.open(path, header(), empty_index(tmp_path))
    for status in ("submitting", "starting", "succeeded"):
        writer.append(record("a", status, prediction_id="p1"))
    writer.append(record("b", "failed", prediction_id="p2", error="boom"))
    writer.close()

    index = load_index(tmp_path)
    before = {key: (state.offset, state.length) for key, state in index.states.items()}
    writer = ManifestWriter.open(path, header(), index)  # compacts: every line moves
    writer.close()
    assert writer.index.record("a").status == "succeeded"
    assert writer.index.record("b").error == "boom"
    # The index the writer was given is left as it was: it still describes the old file.
    assert {key: (state.offset, state.length) for key, state in index.states.items()} == before
    assert writer.index.states["a"].offset != before["a"][0]


def test_across_journals_the_newest_line_of_a_key_wins(tmp_path: Path) -> None:
    # A shard's run, then an unsharded run over the same folder: the unsharded file sorts first,
    # but its line is newer, so it must win, and compacting the shard must drop the stale line.
    shard = tmp_path / manifest_name((1, 1))
    writer = ManifestWriter.open(shard, header(), empty_index(tmp_path))
    writer.append(record("a", "failed", prediction_id="p1", error="boom"))
    writer.close()
    plain = tmp_path / "manifest.jsonl"
    writer = ManifestWriter.open(plain, header(), load_index(tmp_path))
    writer.append(record("a", "succeeded", prediction_id="p2"))
    writer.close()

    index = load_index(tmp_path)
    assert index.states["a"].status == "succeeded"
    assert load_records(tmp_path)[1]["a"].prediction_id == "p2"
    ManifestWriter.open(shard, header(), index).close()  # the shard's next run compacts it
    ManifestWriter.open(plain, header(), load_index(tmp_path)).close()
    assert load_index(tmp_path).states["a"].status == "succeeded"
    assert load_records(tmp_path)[1]["a"].prediction_id == "p2"


# Journals written by batchrun before manifest/ was split by role (commit 6be20e2, with its
# manifest.py): a plain journal and a shard with a newer line for k2 and a torn last line.
OLD_RUN = Path(__file__).resolve().parents[1] / "data" / "manifest-v1"


def test_a_manifest_written_before_the_split_loads_as_it_did(tmp_path: Path) -> None:
    headers, records = load_records(OLD_RUN)
    assert [h["shard"] for h in headers] == [None, "1/2"]
    assert {key: record.status for key, record in records.items()} == {
        "k1": "succeeded",
        "k2": "succeeded",  # the shard's line is newer
        "k3": "error",
        "k4": "succeeded",
        "k5": "processing",
        "k6": "canceled",
        "k7": "aborted",
        "k8": "submitting",
    }
    assert records["k1"].files == (
        FileRecord("https://f/x.png", "painter/k1-0.png", "00" * 32, 12),
    )
    assert records["k1"].version == "1" * 64
    assert records["k4"].missing == ("https://f/y.png",)
    assert records["k4"].possible_duplicate
    index = load_index(OLD_RUN)
    assert {key: state.status for key, state in index.states.items()} == {
        key: record.status for key, record in records.items()
    }
    assert (index.lines, index.torn_lines) == (11, 1)
    assert all(index.record(key) == record for key, record in records.items())


def test_records_written_now_are_byte_for_byte_those_written_before_the_split() -> None:
    for path in manifest_paths(OLD_RUN):
        raw = path.read_bytes()
        for offset, length, data in list(iter_journal(path))[1:]:
            stamped = {**Record.from_json(data).to_json(), WRITTEN: data[WRITTEN]}
            assert writer_line(stamped) == raw[offset : offset + length]


def test_compacting_an_old_journal_copies_its_lines_unchanged(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(OLD_RUN, run)
    old_lines = (OLD_RUN / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    ManifestWriter.open(run / "manifest.jsonl", header(), load_index(run)).close()
    new_lines = (run / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    last_of_each = {json.loads(line)["key"]: line for line in old_lines[1:]}
    del last_of_each["k2"]  # its newest line is the shard's: that journal keeps it
    assert new_lines[1:] == sorted(last_of_each.values(), key=old_lines.index)
    assert load_records(run)[1] == load_records(OLD_RUN)[1]
