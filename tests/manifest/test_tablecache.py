"""The table kept on disk (manifest/tablecache.py): the same table as a read of the journals,
whatever happened to them since, and never trusted when it does not match or does not parse."""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path
from typing import Any

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest import tablecache, tablerow, tablevalues
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import WRITTEN, FileRecord, Record
from batchrun.manifest.table import load_index, load_table
from batchrun.manifest.tablecache import TABLE_CACHE
from batchrun.manifest.tablestore import _ROW_COLUMNS
from batchrun.manifest.widevalues import Wide
from batchrun.manifest.writer import ManifestWriter, encode_line, new_header


def record(key: str, status: str = "succeeded", **changes: object) -> Record:
    files = (FileRecord(f"https://f/{key}.png", f"flux/{key}.png", "00" * 32, 12),)
    base = Record(
        key=key,
        job="flux",
        target={"model": "acme/flux"},
        input={"prompt": f"p-{key}"},
        vars={"n": key},
        repeat=0,
        status=status,
        files=files if status == "succeeded" else (),
        created_at="2024-01-01T00:00:00Z",
        completed_at="2024-01-01T00:00:05.5+00:00",
        metrics={"predict_time": 1.25},
    )
    return base.replace(**changes)


def keys(count: int, start: int = 0) -> list[str]:
    return [f"{number:016x}" for number in range(start + 1, start + count + 1)]


def journal(run: Path, records: list[Record], name: str = "manifest.jsonl") -> Path:
    """A journal written as a run writes it (compacting what was there)."""
    shard = None if name == "manifest.jsonl" else (1, 2)
    header = new_header(spec_path=run / "s.yaml", spec_sha256="ab" * 32, name="x", shard=shard)
    writer = ManifestWriter.open(run / name, header, load_index(run))
    for item in records:
        writer.append(item)
    writer.close()
    return run / name


def append(path: Path, records: list[Record]) -> None:
    """Lines appended as a run appends them, without compacting."""
    with path.open("ab") as out:
        for stamp, item in enumerate(records, start=1):
            out.write(encode_line({**item.to_json(), WRITTEN: 10**18 + stamp}))


def shape(table: KeyTable) -> object:
    """Everything a reader takes from a table."""
    columns = {name: getattr(table, name).tobytes() for name, _ in _ROW_COLUMNS}  # NaN == NaN
    return (
        columns,
        list(table.rows.items()),
        table.headers,
        table.lines,
        table.torn_lines,
        table.jobs.values,
        table.apis.values,
        table.versions.values,
        table.templates.values,
        table.checks,
    )


def fresh(run: Path) -> KeyTable:
    """The table read from the journals alone."""
    (run / TABLE_CACHE).unlink(missing_ok=True)
    return load_table(run)


def cached(run: Path) -> KeyTable:
    """The table as a reader with the cache gets it (and the cache written anew)."""
    load_table(run, save=True)
    assert (run / TABLE_CACHE).exists()
    return load_table(run, save=True)


def test_the_cache_stands_for_the_journals(tmp_path: Path) -> None:
    path = journal(tmp_path, [record(key) for key in keys(50)])
    load_table(tmp_path, save=True)
    before = (tmp_path / TABLE_CACHE).stat().st_mtime_ns
    again = load_table(tmp_path, save=True)
    assert (tmp_path / TABLE_CACHE).stat().st_mtime_ns == before  # nothing parsed: not written
    assert shape(again) == shape(fresh(tmp_path))
    assert again.record(keys(50)[7]).key == keys(50)[7]
    assert path.exists()


def test_lines_appended_since_are_parsed_and_win(tmp_path: Path) -> None:
    path = journal(tmp_path, [record(key, "processing") for key in keys(20)])
    load_table(tmp_path, save=True)
    append(path, [record(key) for key in keys(5)] + [record(key) for key in keys(3, 100)])
    table = cached(tmp_path)
    assert shape(table) == shape(fresh(tmp_path))
    assert table.status_of(table.rows[keys(1)[0]]) == "succeeded"
    assert len(table.rows) == 23


def test_a_compacted_truncated_or_edited_journal_is_read_whole(tmp_path: Path) -> None:
    path = journal(tmp_path, [record(key, "processing") for key in keys(20)])
    load_table(tmp_path, save=True)
    journal(tmp_path, [record(key) for key in keys(4)])  # compacted: a new file
    assert shape(cached(tmp_path)) == shape(fresh(tmp_path))

    load_table(tmp_path, save=True)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-2]))  # cut short, same inode
    assert cached(tmp_path).lines == len(lines) - 3  # the header aside
    assert shape(cached(tmp_path)) == shape(fresh(tmp_path))

    load_table(tmp_path, save=True)
    data = path.read_bytes()
    edited = data.replace(b'"status":"processing"', b'"status":"succeeded" ', 1)
    with path.open("r+b") as out:  # the same size, the same inode, one byte of a line changed
        out.write(edited)
    assert shape(cached(tmp_path)) == shape(fresh(tmp_path))


def test_a_torn_last_line_is_counted_and_read_again_once_whole(tmp_path: Path) -> None:
    path = journal(tmp_path, [record(key) for key in keys(5)])
    with path.open("ab") as out:
        out.write(encode_line(record(keys(1, 50)[0]).to_json())[:40])
    first = cached(tmp_path)
    assert first.torn_lines == 1
    assert shape(first) == shape(fresh(tmp_path))
    with path.open("ab") as out:  # a run cuts a torn line before it appends: here, the rest
        out.write(encode_line(record(keys(1, 50)[0]).to_json())[40:])
    table = cached(tmp_path)
    assert table.torn_lines == 0
    assert len(table.rows) == 6
    assert shape(table) == shape(fresh(tmp_path))


def test_shards_and_a_journal_added_or_removed(tmp_path: Path) -> None:
    journal(tmp_path, [record(key) for key in keys(5)])
    load_table(tmp_path, save=True)
    shard = journal(tmp_path, [record(key) for key in keys(5, 10)], "manifest.shard-1-of-2.jsonl")
    assert shape(cached(tmp_path)) == shape(fresh(tmp_path))
    append(shard, [record(key, "failed") for key in keys(2)])  # wins: written later
    assert shape(cached(tmp_path)) == shape(fresh(tmp_path))
    load_table(tmp_path, save=True)
    shard.unlink()
    assert shape(cached(tmp_path)) == shape(fresh(tmp_path))


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data[:-3],  # the last array a few bytes short
        lambda data: data + b"\0" * 8,  # more than its arrays
        lambda data: data[: data.index(b"\n", len(tablecache.MAGIC))],  # no end to its meta
        lambda data: b"not a table\n" + data,
        lambda data: data.replace(b'"version":"', b'"version":"0.0.0-', 1),
        lambda data: b"",
    ],
)
def test_a_damaged_cache_is_ignored(tmp_path: Path, damage: object) -> None:
    journal(tmp_path, [record(key) for key in keys(10)])
    load_table(tmp_path, save=True)
    cache = tmp_path / TABLE_CACHE
    cache.write_bytes(damage(cache.read_bytes()))  # type: ignore[operator]
    assert shape(load_table(tmp_path)) == shape(fresh(tmp_path))


def test_numbers_out_of_bounds_are_not_trusted(tmp_path: Path) -> None:
    """A cache made to match the journal but pointing outside what it lists is ignored."""
    journal(tmp_path, [record(key) for key in keys(10)])
    load_table(tmp_path, save=True)
    cache = tmp_path / TABLE_CACHE
    data = cache.read_bytes()
    meta_end = data.index(b"\n", data.index(b"\n") + 1)
    meta = json.loads(data[data.index(b"\n") + 1 : meta_end])
    meta["jobs"] = []  # every row's job index now points nowhere
    cache.write_bytes(data[: data.index(b"\n") + 1] + json.dumps(meta).encode() + data[meta_end:])
    assert shape(load_table(tmp_path)) == shape(fresh(tmp_path))


def test_a_line_read_back_must_be_the_keys(tmp_path: Path) -> None:
    """A journal rewritten in place (or a cache that lies) cannot hand one key another's
    record."""
    path = journal(tmp_path, [record(key) for key in keys(3)])
    table = load_table(tmp_path)
    data = path.read_bytes()
    first, second = keys(3)[:2]
    with path.open("r+b") as out:
        out.write(data.replace(first.encode(), b"x" * 16).replace(second.encode(), first.encode()))
    with pytest.raises(ManifestError, match="again"):
        table.record(first)


def test_a_run_index_from_the_cache(tmp_path: Path) -> None:
    items = [record(key) for key in keys(6)] + [
        record(keys(1, 30)[0], "processing", prediction_id="p-flight", files=())
    ]
    journal(tmp_path, items)
    load_table(tmp_path, save=True)
    index = load_index(tmp_path, save=True)
    state = index.states[keys(1, 30)[0]]
    assert state.prediction_id == "p-flight"
    assert state.status == "processing"
    done = index.states[keys(1)[0]]
    assert done.files == (("flux/" + keys(1)[0] + ".png", 12, "00" * 32),)
    assert done.completed == 1704067205_500000
    assert sorted(index.owned_ids()) == ["p-flight"]
    assert index.record(keys(1)[0]).key == keys(1)[0]
    assert len(index.states) == 7
    assert index.lines == 7
    assert os.path.exists(tmp_path / TABLE_CACHE)


def test_a_cache_larger_than_its_journals_could_make_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal(tmp_path, [record(key) for key in keys(10)])
    load_table(tmp_path, save=True)
    read: list[int] = []
    real = tablecache._parse
    monkeypatch.setattr(tablecache, "_parse", lambda *args: read.append(1) or real(*args))
    load_table(tmp_path)
    assert read == [1]
    monkeypatch.setattr(tablecache, "CACHE_SLACK", 0)
    monkeypatch.setattr(tablecache, "CACHE_PER_JOURNAL_BYTE", 0)
    assert shape(load_table(tmp_path)) == shape(fresh(tmp_path))
    assert read == [1]  # refused by its size, before a byte of it was parsed


def parsed_lines(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the record lines the next reads parse (one `_append` each)."""
    counted: list[int] = []
    real = tablerow.append
    monkeypatch.setattr(tablerow, "append", lambda *args: counted.append(1) or real(*args))
    return counted


def test_a_proof_finds_a_one_byte_edit_in_the_middle(tmp_path: Path) -> None:
    """The cache's cheap checks look at a journal's identity and ends; `prove` hashes every
    byte the table was parsed from, so an edit in place anywhere shows."""
    path = journal(tmp_path, [record(key) for key in keys(200)])
    load_table(tmp_path, save=True)
    data = path.read_bytes()
    key = keys(200)[100]
    at = data.index(b'"predict_time":1.25', data.index(key.encode()))
    assert tablecache.HEAD_CHECKED < at < len(data) - tablecache.TAIL_CHECKED
    with path.open("r+b") as out:  # one byte, the same inode and size
        out.seek(at + len(b'"predict_time":1.'))
        out.write(b"7")
    trusted = load_table(tmp_path)
    assert trusted.predict_time[trusted.rows[key]] == 1.25  # the cheap checks miss it
    proved = load_table(tmp_path, prove=True)
    assert proved.predict_time[proved.rows[key]] == 1.75
    assert shape(proved) == shape(fresh(tmp_path))


def test_a_proof_parses_only_the_lines_appended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = journal(tmp_path, [record(key, "processing") for key in keys(20)])
    load_table(tmp_path, save=True)
    append(path, [record(key) for key in keys(5)])
    load_table(tmp_path, save=True)  # trusted by its ends; the digest gains a piece
    append(path, [record(key, "failed") for key in keys(3, 100)])
    counted = parsed_lines(monkeypatch)
    proved = load_table(tmp_path, save=True, prove=True)
    assert len(counted) == 3
    assert shape(proved) == shape(fresh(tmp_path))

    load_table(tmp_path, save=True)
    data = path.read_bytes()
    with path.open("r+b") as out:  # in the first piece: nothing of it is taken
        out.write(data.replace(b'"status":"processing"', b'"status":"succeeded" ', 1))
    counted.clear()
    proved = load_table(tmp_path, prove=True)
    assert len(counted) == 28
    assert shape(proved) == shape(fresh(tmp_path))


def test_a_digest_of_too_many_pieces_is_dropped_and_a_proof_reads_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tablecache, "MOST_PIECES", 2)
    path = journal(tmp_path, [record(key, "processing") for key in keys(10)])
    load_table(tmp_path, save=True)
    for start in (100, 200):  # two pieces, then three
        append(path, [record(key) for key in keys(2, start)])
        load_table(tmp_path, save=True)
    counted = parsed_lines(monkeypatch)
    load_table(tmp_path, save=True, prove=True)
    assert len(counted) == 14  # read whole, and kept as one piece
    counted.clear()
    proved = load_table(tmp_path, prove=True)
    assert counted == []
    assert shape(proved) == shape(fresh(tmp_path))


def test_a_cache_of_an_older_format_is_ignored_and_written_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal(tmp_path, [record(key) for key in keys(10)])
    load_table(tmp_path, save=True)
    cache = tmp_path / TABLE_CACHE
    data = cache.read_bytes()
    assert data.startswith(tablecache.MAGIC)
    cache.write_bytes(b"batchrun-table 1\n" + data[len(tablecache.MAGIC) :])
    counted = parsed_lines(monkeypatch)
    table = load_table(tmp_path, save=True)
    assert len(counted) == 10  # every line: the older cache is not read
    assert cache.read_bytes().startswith(tablecache.MAGIC)  # written anew, in this format
    assert shape(table) == shape(fresh(tmp_path))


def variables_shape(table: KeyTable) -> object:
    """What the report takes from a table loaded with `variables=True`."""
    columns = {
        name: (
            type(values.raws),
            kept(values.raws),
            values.places.tobytes(),
            values.shapes and values.shapes.values,
            values.shape_places.tobytes(),
        )
        for name, values in [*table.variables.items(), ("", table.repeat)]
    }
    return (shape(table), columns, table.names.values, table.columns.tobytes())


def kept(raws: list[Any] | array[int] | Wide) -> object:
    if isinstance(raws, Wide):
        return (raws.digests.tobytes(), raws.numbers.tobytes(), raws.numeric, raws.mapping)
    return list(raws[1:])


def test_the_variables_the_report_reads_are_kept_and_only_lines_appended_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    odd = [{"n": 1.0}, {"n": True}, {"n": [1, {"a": None}]}, {"m": "x", "n": "é\u2028"}]
    items = [record(key, vars={"n": number, "s": 2**70}) for number, key in enumerate(keys(20))]
    path = journal(
        tmp_path,
        items + [record(key, vars=vars) for key, vars in zip(keys(4, 50), odd, strict=True)],
    )
    load_table(tmp_path, save=True)  # as status keeps it: no variables
    counted = parsed_lines(monkeypatch)
    load_table(tmp_path, variables=True, save=True)
    assert len(counted) == 24  # read whole, and kept with its variables
    append(path, [record(key, repeat=2, vars={"n": 3, "new": 1}) for key in keys(3, 200)])
    counted.clear()
    table = load_table(tmp_path, variables=True, save=True)
    assert len(counted) == 3
    assert table.vars_of(table.rows[keys(3, 200)[0]]) == {"n": 3, "new": 1}
    (tmp_path / TABLE_CACHE).unlink()
    assert variables_shape(table) == variables_shape(load_table(tmp_path, variables=True))


def test_status_keeps_the_variables_where_that_reads_no_more_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`variables_if_read` (status): reading every line, the variables are kept, so the report
    after it parses no line; lines appended are parsed with theirs; a table on disk without
    them (a run's, verify's) is taken as it is, only the lines appended since parsed."""
    items = [record(key, vars={"n": number}) for number, key in enumerate(keys(20))]
    path = journal(tmp_path, items)
    counted = parsed_lines(monkeypatch)
    status = load_table(tmp_path, save=True, variables_if_read=True)
    assert len(counted) == 20
    counted.clear()
    report = load_table(tmp_path, variables=True, save=True)
    assert counted == []
    assert variables_shape(status) == variables_shape(report)
    append(path, [record(key, vars={"n": 7, "new": 1}) for key in keys(3, 200)])
    load_table(tmp_path, save=True, variables_if_read=True)
    assert len(counted) == 3
    counted.clear()
    report = load_table(tmp_path, variables=True)
    assert counted == []
    assert report.vars_of(report.rows[keys(3, 200)[0]]) == {"n": 7, "new": 1}
    (tmp_path / TABLE_CACHE).unlink()
    assert variables_shape(report) == variables_shape(load_table(tmp_path, variables=True))

    load_table(tmp_path, save=True)  # as a run or verify keeps it: no variables
    append(path, [record(key) for key in keys(2, 300)])
    counted.clear()
    status = load_table(tmp_path, save=True, variables_if_read=True)
    assert len(counted) == 2  # not every line again for the variables
    assert status.variables == {}
    assert shape(status) == shape(fresh(tmp_path))


def test_a_reader_without_variables_passes_them_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal(tmp_path, [record(key) for key in keys(10)])
    load_table(tmp_path, variables=True, save=True)
    counted = parsed_lines(monkeypatch)
    table = load_table(tmp_path, save=True)
    assert counted == []
    assert table.variables == {}
    assert shape(table) == shape(fresh(tmp_path))


def test_a_variable_of_more_values_than_kept_is_kept_as_digests_and_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past WIDE_VALUES values (a text of its own per key) a variable keeps their digests, not
    the values, and so does the table file: a reader takes them from it and reads the values
    it shows back from their lines; lines appended after are placed among them."""
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 3)
    texts = [f"needle {number}" for number in range(8)]
    numbers = [3, 2.5, -1, 10**30, 7, 2.5, 0, 1]
    path = journal(
        tmp_path,
        [
            record(key, vars={"text": text, "n": number, "row": {"q": text}, "few": number % 2})
            for key, text, number in zip(keys(8), texts, numbers, strict=True)
        ],
    )
    table = load_table(tmp_path, variables=True, save=True)
    wide = {name for name, values in table.variables.items() if values.wide}
    assert wide == {"text", "n", "row"}
    assert b"needle" not in (tmp_path / TABLE_CACHE).read_bytes()  # nor any other value
    append(path, [record(key, vars={"text": "needle 1", "n": 2.5}) for key in keys(2, 100)])
    counted = parsed_lines(monkeypatch)
    again = load_table(tmp_path, variables=True, save=True)
    assert len(counted) == 2  # the lines appended; the others from the file
    (tmp_path / TABLE_CACHE).unlink()
    assert variables_shape(again) == variables_shape(load_table(tmp_path, variables=True))
    row = again.rows[keys(2, 100)[0]]
    assert again.variables["text"].places[row] == again.variables["text"].places[1]
    assert again.vars_of(row) == {"text": "needle 1", "n": 2.5}
    assert again.vars_of(again.rows[keys(8)[4]]) == {
        "text": "needle 4",
        "n": 7,
        "row": {"q": "needle 4"},
        "few": 1,
    }
    assert again.raws_of("row")[3] == {"q": "needle 2"}  # place 0 is UNSET
    assert again.variables["row"].fields_of(3) == ("q",)
    assert again.variables["row"].fields_of(row) == ()  # the line appended sets no row


@pytest.mark.parametrize("older", [b"batchrun-table 3\n", b"batchrun-table 4\n"])
def test_a_table_file_of_a_format_before_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, older: bytes
) -> None:
    """The formats before (3: every value of every variable in its JSON; 4: without the fields
    of each key's mapping) are read by no reader: the journals are read whole, and the file is
    written anew in this format."""
    journal(tmp_path, [record(key, vars={"text": key, "row": {"a": 1}}) for key in keys(10)])
    load_table(tmp_path, variables=True, save=True)
    cache = tmp_path / TABLE_CACHE
    data = cache.read_bytes()
    assert tablecache.MAGIC == b"batchrun-table 5\n"
    cache.write_bytes(older + data[len(tablecache.MAGIC) :])
    counted = parsed_lines(monkeypatch)
    load_table(tmp_path, variables=True, save=True)
    assert len(counted) == 10
    assert cache.read_bytes() == data
