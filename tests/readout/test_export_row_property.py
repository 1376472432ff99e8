"""Property test: `export_row` reads a record's line itself, field by field, so that a million
rows are made without a `Record` each; whatever a line holds, the row it makes is the row of the
`Record` that `Record.from_json` reads from the same line. This guards the two readers against
drifting apart (a field read one way here and another way there).

The reference below is the row as export made it from a `Record`, before it read lines."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.manifest.records import ALL_STATUSES, Record
from batchrun.planner.columns import flat_vars
from batchrun.readout.export.rows import (
    TOKEN_METRICS,
    export_row,
    output_text,
    variable_column,
)


def row_of_record(record: Record) -> dict[str, Any]:
    """The row of a `Record`, read through its own fields and properties."""
    row: dict[str, Any] = {"key": record.key, "job": record.job}
    for name, value in flat_vars(record.vars).items():
        row[variable_column(name)] = value
    number = (int, float)
    predict_time = record.metrics.get("predict_time")
    row.update(
        input=record.input,
        status=record.status,
        output=output_text(record.shown_output),
        files=[file.path for file in record.files],
        version=record.version,
        prediction_id=record.prediction_id,
        api=record.api.to_json() if record.api is not None else None,
        predict_time=predict_time
        if isinstance(predict_time, number) and not isinstance(predict_time, bool)
        else None,
    )
    for name in TOKEN_METRICS:
        value = record.metrics.get(name)
        row[name] = value if isinstance(value, number) and not isinstance(value, bool) else None
    row["cost"] = record.estimated_cost
    row["error"] = record.error
    return row


# What JSON gives back: the values a line's fields may hold, right or wrong.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["https://example.com/a.png", "data:,x", "succeeded", "key"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
# Variable names that are a fixed column's (`status`, `key`), dotted, or empty.
names = st.one_of(
    st.sampled_from(["prompt", "seed", "status", "key", "file_name", "row", "a.b", ""]),
    st.text(max_size=4),
)
files = st.lists(
    st.fixed_dictionaries(
        {
            "url": st.text(max_size=6),
            "path": st.text(max_size=6),
            "sha256": st.text(max_size=6),
            "bytes": st.integers(0, 10**9),
        }
    ),
    max_size=3,
)
# Each optional field: absent, or a value of the shape it should have, or of any shape.
optional = {
    "vars": st.dictionaries(names, values, max_size=4),
    "input": st.dictionaries(st.text(max_size=4), values, max_size=3),
    "output": st.one_of(values, st.lists(st.text(max_size=4), max_size=4)),
    "files": files,
    "version": st.one_of(st.none(), st.text(max_size=6)),
    "prediction_id": st.one_of(st.none(), st.text(max_size=6)),
    "api": st.one_of(
        values,
        st.fixed_dictionaries({"url": st.one_of(st.text(max_size=6), scalars)}),
        st.fixed_dictionaries({"url": st.text(max_size=6), "sandbox": scalars}),
    ),
    "metrics": st.dictionaries(
        st.sampled_from(["predict_time", *TOKEN_METRICS, "other"]), scalars, max_size=4
    ),
    "cost": scalars,
    "cost_before": scalars,
    "error": st.one_of(st.none(), st.text(max_size=6)),
    "repeat": st.integers(0, 5),
}


@st.composite
def lines(draw: st.DrawFn) -> dict[str, Any]:
    line: dict[str, Any] = {
        "key": draw(st.text(alphabet="0123456789abcdef", min_size=1, max_size=16)),
        "job": draw(st.text(max_size=6)),
        "status": draw(st.sampled_from([status.value for status in ALL_STATUSES])),
    }
    for name, strategy in optional.items():
        if draw(st.booleans()):
            line[name] = draw(strategy)
    # Through JSON and back, as a line is read from the journal.
    parsed: dict[str, Any] = json.loads(json.dumps(line))
    return parsed


@settings(max_examples=400, deadline=None)
@given(lines())
def test_a_row_from_the_line_is_the_row_from_its_record(line: dict[str, Any]) -> None:
    record = Record.from_json(line)
    # As JSON, where True and 1, or 1 and 1.0, differ; and in the same column order.
    expected = json.dumps(row_of_record(record), ensure_ascii=False)
    assert json.dumps(export_row(line), ensure_ascii=False) == expected


def test_the_reference_tells_a_changed_field_apart() -> None:
    """The property can fail: a line whose cost the two read differently gives two rows."""
    line = {"key": "ab", "job": "j", "status": "succeeded", "cost": 0.5, "cost_before": 0.25}
    row = export_row(line)
    assert row["cost"] == 0.75
    assert row == row_of_record(Record.from_json(line))
    assert row != row_of_record(Record.from_json({**line, "cost": True}))
