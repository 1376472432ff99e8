"""A CSV cell's text (`sheet.cell`): whatever the value, the one rule of the module docstring,
also where a number takes the short way past the JSON encoder. And the lines `write_csv` writes
a column at a time (`cells`, `fields`, `lines`): byte for byte what the csv module's writer
writes for the same rows, each value through `cell`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.readout.sheet import (
    FORMULA_STARTS,
    WRITE_ROWS,
    cell,
    cells,
    field,
    fields,
    lines,
    write_csv,
)


def rule(value: Any) -> str:
    """The docstring's rule, written plainly: None empty, text as it is, anything else compact
    JSON; a leading `'` where a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    )
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class Text(str):
    """A str subclass (an enum's value, as `Status` is): text, not JSON."""


values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),  # NaN and infinities too: JSON's own words for them
        st.text(max_size=5),
        st.sampled_from(["=1+1", "+x", "-3", "@a", "\tx", "\rx"]).map(Text),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_a_cell_is_the_rule(value: Any) -> None:
    assert cell(value) == rule(value)


def test_numbers_and_formulas() -> None:
    assert [cell(v) for v in (-3, 2.5, -0.0, float("inf"), True, 10**20)] == [
        "'-3", "2.5", "'-0.0", "Infinity", "true", "100000000000000000000"
    ]  # fmt: skip
    assert cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert cell({"a": [1, None]}) == '{"a":[1,null]}'


def writer_lines(rows: Sequence[Sequence[Any]]) -> str:
    """The rows as the csv module's writer writes them, each value through `cell` (what
    `write_csv` wrote before it wrote its lines itself)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    for row in rows:
        writer.writerow([cell(value) for value in row])
    return out.getvalue()


# Text made of what the two rules look at: a formula's first characters, what makes the writer
# quote a field, a line break before a formula's start (a column's texts are looked at joined).
texts = st.text(
    alphabet=st.sampled_from(["a", " ", "é", "\x00", ",", '"', "\n", "\r", *FORMULA_STARTS])
)


def column(size: int) -> st.SearchStrategy[list[Any]]:
    """A column's values shaped as `cells` takes each kind: all text or None, all numbers or
    None (infinities and NaN too), all empty lists, or anything (str subclasses too)."""
    return st.one_of(
        st.lists(st.none() | texts, min_size=size, max_size=size),
        st.lists(st.none() | st.integers() | st.floats(), min_size=size, max_size=size),
        st.lists(st.builds(list), min_size=size, max_size=size),
        st.lists(values | texts, min_size=size, max_size=size),
    )


def table(rows: int, width: int) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    return st.lists(column(rows), min_size=width, max_size=width).map(
        lambda columns: list(zip(*columns, strict=True)) if columns else [()] * rows
    )


tables = st.tuples(st.integers(0, 6), st.integers(0, 5)).flatmap(lambda shape: table(*shape))


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 8).flatmap(column))
def test_cells_are_cell_one_by_one(values: list[Any]) -> None:
    assert cells(values) == [cell(value) for value in values]


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, max_size=8))
def test_fields_are_field_one_by_one(values: list[str]) -> None:
    assert fields(values) == [field(value) for value in values]


@settings(max_examples=500, deadline=None)
@given(tables | st.lists(st.lists(values | texts, max_size=4), max_size=5))
def test_lines_are_what_the_csv_writer_writes(rows: list[Sequence[Any]]) -> None:
    assert lines(rows) == writer_lines(rows)


def test_lines_the_writer_writes_alike() -> None:
    # A row of one empty field is quoted (else it reads back as no field), of none is empty.
    assert (
        lines([[""], [None], ["a"]]) == '""\r\n""\r\na\r\n' == writer_lines([[""], [None], ["a"]])
    )
    assert lines([[]]) == "\r\n" == writer_lines([[]])
    # A formula's start after a line break inside a text is not the cell's start.
    rows = [["a\n=1", 1.5], ["b", float("nan")], ["\r", -2]]
    assert lines(rows) == '"a\n=1",1.5\r\nb,NaN\r\n"\'\r",\'-2\r\n' == writer_lines(rows)


def test_write_csv_writes_every_row_in_batches() -> None:
    rows = [(f"k{i}", i, None, {"n": i}, []) for i in range(2 * WRITE_ROWS + 3)]
    out = io.StringIO(newline="")
    assert write_csv(out, ["key", "=i", "x", "input", "files"], iter(rows)) == len(rows)
    assert out.getvalue() == writer_lines([["key", "=i", "x", "input", "files"], *rows])
    resumed = io.StringIO(newline="")
    assert write_csv(resumed, None, rows[:1]) == 1
    assert resumed.getvalue() == writer_lines(rows[:1])
