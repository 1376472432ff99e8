"""The table's lines parsed on two cores (`manifest/twoparse.py`): the table one core makes."""

from __future__ import annotations

import os
import signal
import tempfile
from array import array
from pathlib import Path
from typing import IO, Any

import pytest
from forks import forks_recorded, stopped_by_ctrl_c

from batchrun.errors import ManifestError
from batchrun.manifest import tablerow, tablevalues, twoparse
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import WRITTEN, FileRecord, Record
from batchrun.manifest.table import load_table
from batchrun.manifest.tablecache import TABLE_CACHE
from batchrun.manifest.tablevalues import Wide
from batchrun.manifest.writer import encode_line, new_header


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every table parsed on two cores, however few its lines (the workers' pids, as forked)."""
    monkeypatch.setattr(twoparse, "TWO_CORES_FROM", 1)
    return forks_recorded(monkeypatch)


def one_core(run: Path, **options: Any) -> KeyTable:
    """The table as one process parses it."""
    held = twoparse.TWO_CORES_FROM
    twoparse.TWO_CORES_FROM = 1 << 62
    try:
        return load_table(run, **options)
    finally:
        twoparse.TWO_CORES_FROM = held


def shape(table: KeyTable) -> object:
    """Everything of a table, column by column (each array's type and bytes: NaN == NaN)."""
    columns = {
        name: (getattr(table, name).typecode, getattr(table, name).tobytes())
        for name in twoparse.ROW_ARRAYS
    }
    variables = [  # in their order
        (
            name,
            type(values.raws),
            kept(values.raws),
            values.places.typecode,
            values.places,
            values.shapes.values if values.shapes is not None else None,
            values.shape_places.typecode,
            values.shape_places,
        )
        for name, values in [*table.variables.items(), ("", table.repeat)]
    ]
    interned = [getattr(table, name).values for name in twoparse.INTERNED.values()]
    return (
        columns,
        variables,
        interned,
        list(table.rows.items()),
        table.rows.numbers.tobytes(),
        table.rows.odd_keys(),
        table.headers,
        table.lines,
        table.torn_lines,
        list(table.checks.items()),
        table.resume_at,
        table._named,
    )


def kept(raws: list[Any] | array[int] | Wide) -> object:
    if isinstance(raws, Wide):
        return (raws.digests.tobytes(), raws.numbers.tobytes(), raws.numeric, raws.mapping)
    return list(raws[1:])


def record(n: int, **changes: object) -> dict[str, Any]:
    """A record line of key number `n`, of a few kinds by its number."""
    key = f"{n:016x}"
    status = ("succeeded", "failed", "processing", "succeeded", "canceled")[n % 5]
    files = (FileRecord(f"https://f/{key}.png", f"flux/{key}.png", "00" * 32, n),)
    made = Record(
        key=key,
        job=("flux", "chat", "sdxl")[n % 3],
        target={"model": "acme/flux"},
        input={"prompt": f"p-{key}"},
        vars={"n": n % 7, "style": ("ink", "oil")[n % 2]},
        repeat=n % 2,
        status=status,
        files=files if status == "succeeded" else (),
        version=("v1", "v2", None)[n % 3],
        files_template=("{key}", None)[n % 2],
        created_at="2024-01-01T00:00:00Z",
        completed_at=None if n % 4 else "2024-01-01T00:00:05.5",
        metrics={"predict_time": n / 8} if n % 3 else {},
        cost=0.01 if n % 6 == 0 else None,
    )
    line = made.to_json()
    if n % 11 == 0:
        line["api"] = {"url": f"http://api-{n % 2}", "sandbox": n % 2 == 0}
    return {**line, WRITTEN: 10**18 + n, **changes}


def journal(run: Path, lines: list[dict[str, Any]], name: str = "manifest.jsonl") -> Path:
    header = new_header(spec_path=run / "s.yaml", spec_sha256="ab" * 32, name="x", shard=None)
    path = run / name
    with path.open("ab") as out:
        out.write(encode_line(header))
        for line in lines:
            out.write(encode_line(line))
    return path


def folders(run: Path, kind: str) -> None:
    """A run folder of one kind: each a rule the merge must keep."""
    many = [record(n) for n in range(1, 241)]
    if kind == "plain":
        journal(run, many)
    elif kind == "rewritten":  # keys superseded in both halves, from each side of the split
        journal(run, many + [record(n, status="failed") for n in range(200, 0, -7)])
    elif kind == "odd keys":
        odd = [record(n, key=f"odd-{n % 13}") for n in range(1, 120)]
        journal(run, many[:150] + odd + many[150:])  # the middle among them
    elif kind == "shards, the middle in the first":
        journal(run, many[:200])
        journal(run, many[190:], "manifest.shard-2-of-2.jsonl")
    elif kind == "shards, the middle in the second":
        journal(run, many[:30])
        journal(run, many[20:], "manifest.shard-2-of-2.jsonl")
    elif kind == "three shards":
        journal(run, many[:80])
        journal(run, many[80:170], "manifest.shard-2-of-3.jsonl")
        journal(run, many[150:], "manifest.shard-3-of-3.jsonl")
    elif kind == "variables":  # some only in one half, ints then a text, mappings
        lines = [record(n) for n in range(1, 121)]
        lines += [record(n, vars={"seed": n, "late": {"a": n % 3}}) for n in range(121, 241)]
        lines[200]["vars"]["seed"] = "text"
        journal(run, lines)
    elif kind == "torn":
        path = journal(run, many)
        with path.open("ab") as out:
            out.write(encode_line(record(999))[:-40])
    else:
        raise AssertionError(kind)


KINDS = [
    "plain",
    "rewritten",
    "odd keys",
    "shards, the middle in the first",
    "shards, the middle in the second",
    "three shards",
    "variables",
    "torn",
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("files_kept", [None, 30, 60])
def test_two_cores_make_the_table_one_core_makes(
    tmp_path: Path, forks: list[int], kind: str, files_kept: int | None
) -> None:
    # 60 keys with files kept: the first half keeps 48 (fewer in some kinds), the worker the rest.
    folders(tmp_path, kind)
    for variables in (False, True):
        one = one_core(tmp_path, variables=variables, files_kept=files_kept)
        assert forks == []
        two = load_table(tmp_path, variables=variables, files_kept=files_kept)
        assert len(forks) == 1
        assert shape(two) == shape(one)
        forks.clear()
    assert (one.torn_lines, len(one.rows)) != (0, 0)


@pytest.mark.parametrize("lines", range(20, 31))
def test_a_line_across_the_middle_is_parsed_once(
    tmp_path: Path, forks: list[int], lines: int
) -> None:
    """Wherever the middle falls (in a line, on its newline, at a line's start), each line is
    one side's."""
    journal(tmp_path, [record(n, prompt="x" * n) for n in range(1, lines)])
    two = load_table(tmp_path)
    assert len(forks) == 1
    assert shape(two) == shape(one_core(tmp_path))


def test_the_split_is_a_line_start_at_the_middle_or_after(tmp_path: Path) -> None:
    path = journal(tmp_path, [record(n) for n in range(1, 9)])
    data = path.read_bytes()
    starts = {0} | {at + 1 for at, byte in enumerate(data) if byte == ord("\n")}
    with path.open("rb") as handle:
        for at in range(len(data) + 1):
            found = twoparse._line_from(handle, at, len(data))
            assert found == min(start for start in starts if start >= at)


@pytest.mark.parametrize("wide", [3, 40, 200])
def test_wide_variables_are_merged_in_one_cores_places(
    tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch, wide: int
) -> None:
    """A variable of more than WIDE_VALUES values keeps digests: wide in both halves (3, 40),
    or only once both are merged (200: each half has fewer); one of the worker's half alone."""
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", wide)
    # "seed": integers, one of another kind in the worker's half; "row": mappings of two shapes
    # in the first half, of those and a third in the worker's; "opt" of the first half only.
    lines = [
        record(n, vars={"text": f"t{n % 50}", "n": n % 5, "seed": n, "row": {"a": n % 3}})
        for n in range(1, 101)
    ]
    lines += [record(n, vars={"text": f"t{n}", "seed": n, "row": n % 4}) for n in range(101, 301)]
    for n, line in enumerate(lines):  # "opt": mappings in the first half only
        line["vars"]["opt"] = {"x": n % 2} if n < 100 else "s"
    lines[150]["vars"]["row"] = {"b": 1, "a": 2}
    lines[250]["vars"]["row"] = {"c": {"d": 1}}
    lines[280]["vars"]["seed"] = "x"
    # Two variables of the worker's half only, mappings in one: not in the order of their names.
    lines += [record(n, vars={"text": f"t{n}", "z": n % 2, "m": {"k": n}}) for n in range(301, 401)]
    journal(tmp_path, lines)
    one = one_core(tmp_path, variables=True)
    two = load_table(tmp_path, variables=True)
    assert len(forks) == 1
    assert isinstance(one.variables["text"].raws, Wide)
    assert list(one.variables) == ["text", "n", "seed", "row", "opt", "z", "m"]
    assert shape(two) == shape(one)
    assert [two.vars_of(row) for row in two.rows.values()] == [
        one.vars_of(row) for row in one.rows.values()
    ]


def test_a_table_of_many_lines_appended_is_parsed_on_two_cores(
    tmp_path: Path, forks: list[int]
) -> None:
    path = journal(tmp_path, [record(n) for n in range(1, 101)])
    one_core(tmp_path, save=True, variables=True)
    with path.open("ab") as out:
        for n in range(50, 301):
            out.write(encode_line(record(n, status="failed", vars={"new": n})))
    one = one_core(tmp_path, variables=True)
    two = load_table(tmp_path, variables=True)
    assert len(forks) == 1
    assert shape(two) == shape(one)


def test_the_table_saved_from_two_cores_is_proved_by_every_byte(
    tmp_path: Path, forks: list[int]
) -> None:
    """Each process hashes the lines it parsed: the table saved is taken by `verify`'s proof
    (no line parsed again), and a byte changed in either half is found."""
    path = journal(tmp_path, [record(n) for n in range(1, 201)])
    one = one_core(tmp_path)
    load_table(tmp_path, save=True)
    forks.clear()
    proved = load_table(tmp_path, prove=True)
    assert forks == []  # taken from the table kept: nothing parsed
    assert shape(proved) == shape(one)
    data = path.read_bytes()
    for key in (f"{3:016x}", f"{197:016x}"):  # one in each half
        load_table(tmp_path, save=True)
        at = data.index(b'"sha256"', data.index(key.encode()))
        with path.open("r+b") as out:  # a byte, the same inode and size
            out.seek(at + len(b'"sha256":"'))
            out.write(b"1")
        assert load_table(tmp_path, prove=True).checks != one.checks  # read whole again
        with path.open("r+b") as out:
            out.write(data)


@pytest.mark.parametrize("broken", ["unreadable", "malformed", "not a header"])
def test_an_error_in_the_workers_half_names_the_line_one_core_names(
    tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    path = journal(tmp_path, [record(n) for n in range(1, 201)])
    second = journal(tmp_path, [record(n) for n in range(201, 211)], "manifest.shard-2-of-2.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    if broken == "unreadable":
        lines[180] = b'{"key": "00000000000000b4", "status"\n'
    elif broken == "malformed":
        lines[180] = encode_line(record(180, files=[{"path": 7}]))
    else:
        second.write_bytes(second.read_bytes().replace(b'"batchrun_manifest"', b'"other"', 1))
    path.write_bytes(b"".join(lines))
    with pytest.raises(ManifestError) as one:
        one_core(tmp_path)
    parsed: list[int] = []  # by this process (the worker counts in its own copy)
    real = tablerow.append
    monkeypatch.setattr(tablerow, "append", lambda *args: parsed.append(1) or real(*args))
    with pytest.raises(ManifestError) as two:
        load_table(tmp_path)
    assert len(forks) == 1
    assert str(two.value) == str(one.value)
    assert 0 < len(parsed) < 150  # its half only: the worker's error is its word
    said = {
        "unreadable": f"{path}:181: unreadable manifest line",
        "malformed": f"{path}: a malformed record for key '{180:016x}'",
        "not a header": f"{second}:1: not a batchrun manifest",
    }[broken]
    assert str(one.value).startswith(said)


def test_the_first_error_wins_over_one_in_the_workers_half(
    tmp_path: Path, forks: list[int]
) -> None:
    path = journal(tmp_path, [record(n) for n in range(1, 201)])
    lines = path.read_bytes().splitlines(keepends=True)
    lines[10] = lines[180] = b"{broken\n"
    path.write_bytes(b"".join(lines))
    with pytest.raises(ManifestError, match=f"^{path}:11: unreadable manifest line$"):
        load_table(tmp_path)
    assert len(forks) == 1


@pytest.mark.parametrize("how", ["killed", "fails"])
def test_a_worker_that_does_not_finish_leaves_its_half_to_this_process(
    tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    folders(tmp_path, "three shards")
    one = one_core(tmp_path, variables=True, save=True)
    cache = (tmp_path / TABLE_CACHE).read_bytes()
    (tmp_path / TABLE_CACHE).unlink()
    command = os.getpid()
    real = twoparse.rows_from

    def rows_from(table: KeyTable, journals: Any, variables: bool) -> None:
        if os.getpid() != command:  # the worker
            if how == "killed":
                os.kill(os.getpid(), signal.SIGKILL)
            raise MemoryError
        real(table, journals, variables)

    monkeypatch.setattr(twoparse, "rows_from", rows_from)
    two = load_table(tmp_path, variables=True, save=True)
    assert len(forks) == 1
    assert shape(two) == shape(one)
    assert (tmp_path / TABLE_CACHE).read_bytes() == cache  # the digests as one core has them


# A child that reads a run folder's table on two cores, however few its lines, and sends Ctrl-C
# to its process group (as a terminal does: to the command and its worker) once the worker is
# forked, as this process parses its half.
CTRL_C = """
import os, signal, sys
from batchrun import secondcore
from batchrun.manifest import twoparse

twoparse.TWO_CORES_FROM = 1
secondcore.available = lambda: True
real, command = twoparse.rows_from, os.getpid()

def rows_from(*args):
    if os.getpid() == command:
        os.killpg(0, signal.SIGINT)
    return real(*args)

twoparse.rows_from = rows_from
from batchrun.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_ctrl_c_during_the_parse_stops_the_command_and_its_worker(tmp_path: Path) -> None:
    journal(tmp_path, [record(n) for n in range(1, 201)])
    stopped_by_ctrl_c(CTRL_C, "status", str(tmp_path))
    assert not (tmp_path / TABLE_CACHE).exists()


def test_every_row_array_of_the_table_is_sent_back() -> None:
    """A column added to `KeyTable` and not to ROW_ARRAYS would be left out of the merge."""
    table = KeyTable(paths=[])
    arrays = {name for name, value in vars(table).items() if isinstance(value, array)}
    assert arrays == set(twoparse.ROW_ARRAYS)


def test_ctrl_c_in_this_half_kills_and_reaps_the_worker(
    tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    journal(tmp_path, [record(n) for n in range(1, 201)])
    command = os.getpid()
    real = twoparse.rows_from

    def rows_from(table: KeyTable, journals: Any, variables: bool) -> None:
        if os.getpid() == command:  # this process's half; the worker's goes on
            raise KeyboardInterrupt
        real(table, journals, variables)

    monkeypatch.setattr(twoparse, "rows_from", rows_from)
    with pytest.raises(KeyboardInterrupt):
        load_table(tmp_path, save=True)
    (worker,) = forks
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(worker, 0)
    assert not (tmp_path / TABLE_CACHE).exists()


def test_the_worker_sends_its_rows_through_the_run_folder(
    tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the journals, not in the system's temporary folder (often held in memory); a
    folder this process may not write in sends them through that one, still on two cores."""
    folders(tmp_path, "plain")
    made: list[object] = []
    real = tempfile.TemporaryFile

    def temporary(dir: Path | None = None) -> IO[bytes]:
        made.append(dir)
        if dir is not None and refused:
            raise PermissionError(13, "Permission denied")
        return real(dir=dir)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary)
    for refused in (False, True):
        made.clear()
        expected = shape(one_core(tmp_path))
        assert shape(load_table(tmp_path)) == expected
        assert made == ([tmp_path, None] if refused else [tmp_path])
    assert len(forks) == 2
