from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

import pytest

from batchrun.errors import ManifestError
from batchrun.manifest import tablevalues, widevalues
from batchrun.manifest.records import Record
from batchrun.manifest.table import load_index, load_table
from batchrun.manifest.tablevalues import UNSET, Values
from batchrun.manifest.widevalues import Wide, is_number, value_key
from batchrun.manifest.writer import ManifestWriter, new_header
from batchrun.planner.columns import flat_vars


def record(key: str, variables: dict[str, object], repeat: int = 0) -> Record:
    return Record(
        key=key,
        job="flux",
        target={"model": "acme/flux"},
        input={"prompt": key},
        vars=variables,
        repeat=repeat,
        status="succeeded",
    )


def write(run: Path, records: list[Record]) -> None:
    header = new_header(spec_path=run / "s.yaml", spec_sha256="ab" * 32, name="t", shard=None)
    writer = ManifestWriter.open(run / "manifest.jsonl", header, load_index(run))
    for each in records:
        writer.append(each)
    writer.close()


def test_values_are_told_apart_by_their_json() -> None:
    values = Values()
    for raw in (1, 1.0, True, "1", 1, {"a": 1, "b": 2}, {"b": 2, "a": 1}, None, -0.0, 0.0):
        values.append(raw)
    values.append(UNSET)
    assert values.raws == [UNSET, 1, 1.0, True, "1", {"a": 1, "b": 2}, None, -0.0, 0.0]
    assert list(values.places) == [1, 2, 3, 4, 1, 5, 5, 6, 7, 8, 0]
    assert len({value_key(raw) for raw in values.raws[1:]}) == 8


@pytest.mark.parametrize("bucket", [1, 2, 1 << 17])
def test_a_variable_of_too_many_values_keeps_digests_in_the_same_places(
    monkeypatch: pytest.MonkeyPatch, bucket: int
) -> None:
    """Past WIDE_VALUES values a variable keeps a digest of each, not the values, its rows
    placed once all are in (`settle`, a bucket of digests at a time): each row's place is the
    one it has when every value is kept, whether the rows came before it was wide, between
    settles, or after; and what sorts its values as numbers is kept."""
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 3)
    monkeypatch.setattr(widevalues, "SETTLED_PER_BUCKET", bucket)
    raws: list[Any] = [5, 6, 5, 7, "a", 2.5, {"a": 1, "b": 2}, UNSET, "a", {"b": 2, "a": 1}, 8]
    raws += [f"t{n % 7}" for n in range(40)] + [10**30, -1, True, 1, 1.0, "1", UNSET, 2.5]
    for split in (0, 3, 20, len(raws)):  # where a settle comes between rows
        wide, kept = placed(raws, split)
        assert isinstance(wide.raws, Wide)
        assert not isinstance(kept.raws, Wide)
        numbers = [float(raw) if is_number(raw) else 0.0 for raw in kept.raws[1:]]
        assert list(wide.raws.numbers[1:]) == numbers
        assert list(wide.raws.numeric[1:]) == [is_number(raw) for raw in kept.raws[1:]]
        assert wide.raws.mapping
    # Integers stay integers however many, in an array, placed as a Wide's are; until the
    # first value of another kind.
    ints: list[Any] = [n * 7 % 11 - 5 for n in range(30)] + [UNSET, 2**63 - 1, -(2**63), 3]
    for split in (0, 4, 20, len(ints)):
        wide, kept = placed(ints, split)
        assert isinstance(wide.raws, array)
        assert list(wide.raws) == list(kept.raws)
        wide, kept = placed([*ints, 2**63, *ints], split)
        assert isinstance(wide.raws, Wide)


@pytest.mark.parametrize("ints", [False, True])
def test_two_values_that_share_a_digest_become_one_and_no_other_moves(
    monkeypatch: pytest.MonkeyPatch, ints: bool
) -> None:
    """A digest shared by two values kept before the variable turned wide (odds in
    `widevalues.digest`) makes them one value; the rows of every other value keep theirs,
    as do rows appended after (a row of 6 is not put with a row of "x")."""
    shared = widevalues.digest(value_key(2))
    real = widevalues.digest
    monkeypatch.setattr(widevalues, "digest", lambda key: shared if key == 3 else real(key))
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 5)
    first = [1, 2, 3, 4, 5, 6] if ints else ["1", 2, 3, "4", "5", "6"]
    column = Values()
    for raw in [*first, "x", first[5], "x", first[0]]:
        column.append(raw)
    column.settle()
    assert isinstance(column.raws, Wide)
    # 2 and 3 share a place; each other value its own, rows after it included.
    places = list(column.places)
    assert places[1] == places[2]
    assert len({places[0], places[1], *places[3:7]}) == 6
    assert places[7:] == [places[5], places[6], places[0]]


@pytest.mark.parametrize("wide", [False, True])
def test_a_rows_shape_is_flat_vars_of_its_own_value_whatever_the_row_before(
    monkeypatch: pytest.MonkeyPatch, wide: bool
) -> None:
    """Each row's fields are `flat_vars`'s of its own value, in its order, whether it has the
    top-level names of the row before (a mapping inside one of them, or in another order) or
    none (a text, an empty mapping, no value); a known integer or text keeps its place, and
    integers held past WIDE_VALUES take theirs at `settle`."""
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 3 if wide else 4096)
    rows: list[Any] = [
        {"a": 1, "b": "x"},
        {"a": 2, "b": "x"},
        {"a": {"c": 1}, "b": "x"},
        {"a": {"c": 2}, "b": "y"},
        {"b": "x", "a": 1},
        {"a": 1, "b": "x"},
        {},
        "x",
        UNSET,
        {"a": [1], "b": None},
        {"a": 1, "b": "x"},
        {"a": {"c": {"d": 3}}, "b": 1.5},
    ]
    column, ints, texts = Values(), Values(), Values()
    numbers = [0, 7, 0, 7, 40, 50, 60, 70, 80, 90, 40, 7]
    for raw, number in zip(rows, numbers, strict=True):
        column.append(raw)
        ints.append(number)
        texts.append(str(number))
    for each in (column, ints, texts):
        each.settle()
    for row, raw in enumerate(rows):
        flat = flat_vars(raw) if isinstance(raw, dict) else {}
        assert column.fields_of(row) == tuple(flat)
    assert [column.places[at] for at in (4, 5, 10)] == [column.places[0]] * 3  # one value
    for each in (ints, texts):
        places = list(each.places)
        assert [places[at] for at in (2, 3, 10, 11)] == [places[at] for at in (0, 1, 4, 1)]
        assert len(set(places)) == 8


def placed(raws: list[Any], split: int) -> tuple[Values, Values]:
    """`raws` appended to a Values and settled (once more before `split`), and to one that
    keeps every value: their places are the same."""
    wide, kept = Values(), Values(keep_all=True)
    for at, raw in enumerate(raws):
        if at == split:
            wide.settle()
        wide.append(raw)
        kept.append(raw)
    wide.settle()
    assert list(wide.places) == list(kept.places)
    return wide, kept


def test_variables_in_columns_a_place_per_row(tmp_path: Path) -> None:
    write(
        tmp_path,
        [
            record("a", {"seed": 1, "style": "ink"}),
            record("b", {"seed": 2}, repeat=3),
            record("c", {"style": "oil", "size": 512, "seed": 1}),
            record("a", {"seed": 1, "style": "ink"}, repeat=1),  # a later line of key a
        ],
    )
    table = load_table(tmp_path, variables=True)
    assert list(table.variables) == ["seed", "style", "size"]
    seed, style, size = (table.variables[name] for name in ("seed", "style", "size"))
    assert (list(seed.raws[1:]), list(seed.places)) == ([1, 2], [1, 2, 1, 1])
    assert isinstance(seed.raws, array)  # integers only: 8 bytes each, not an object each
    assert (style.raws[1:], list(style.places)) == (["ink", "oil"], [1, 0, 2, 1])
    assert (list(size.raws[1:]), list(size.places)) == ([512], [0, 0, 1, 0])  # rows before
    assert [table.repeat.raws[place] for place in table.repeat.places] == [0, 3, 0, 1]
    assert table.columns_of(table.rows["c"]) == ("style", "size", "seed")
    assert table.rows["a"] == 3


def test_malformed_variables_are_a_manifest_error(tmp_path: Path) -> None:
    write(tmp_path, [record("a", {"seed": 1})])
    with (tmp_path / "manifest.jsonl").open("a") as journal:
        journal.write('{"key": "b", "job": "flux", "status": "succeeded", "vars": 7}\n')
    with pytest.raises(ManifestError, match="a malformed record for key 'b'"):
        load_table(tmp_path, variables=True)


def test_keys_are_found_by_number_at_every_edge(tmp_path: Path) -> None:
    """`KeyRows` finds a key's row by the number its hex digits spell (the keys whose top 16
    bits match, then a bisection among them): at both ends of the range, in one run of top
    bits and across one, and not a number it lacks; `mark_plan` marks what a plan names."""
    keys = [
        "0000000000000000",
        "0000000000000001",
        "0000ffffffffffff",
        "0001000000000000",
        "7fff000000000000",
        "7fffffffffffffff",
        "ffff000000000000",
        "ffffffffffffffff",
    ]
    write(tmp_path, [record(key, {}) for key in [*reversed(keys), "an-odd-key"]])
    table = load_table(tmp_path)
    rows = table.rows
    for key in keys:
        assert rows.row_of_number(int(key, 16)) == rows[key] == rows.get(key)
    for absent in (2, 0x0000FFFFFFFFFFFE, 0x8000000000000000, 0xFFFFFFFFFFFFFFFE):
        assert rows.row_of_number(absent) is None
        assert rows.get(f"{absent:016x}") is None
    assert rows["an-odd-key"] == len(keys)
    unrecorded: list[tuple[str, str]] = []
    planned = [(int(keys[0], 16), "flux"), (2, "flux"), (int(keys[-1], 16), "flux")]
    assert table.mark_plan(planned, unrecorded) == 3
    assert unrecorded == [("0000000000000002", "flux")]
    assert [table.planned(rows[key]) for key in keys] == [True, *[False] * 6, True]
