"""A journal line's row in the table (manifest/tablerow.py, which reads each field of a line
without making its `Record`) against the line's `Record.from_json`: over lines of any shape in
the fields the table reads, the table finds a line malformed exactly where `Record.from_json`
does, and otherwise each column says what the record says."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from batchrun.api.objects import parse_time
from batchrun.errors import ManifestError
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import ALL_STATUSES, MALFORMED, Record
from batchrun.manifest.table import load_table
from batchrun.manifest.writer import encode_line, new_header

KEY = "00000000000000aa"
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, 0.0, -0.0, 1, -1.5]),  # a cost of 0 is priced; a negative one is not
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
good_file = st.fixed_dictionaries(
    {
        "url": st.text(max_size=4),
        "path": st.text(max_size=4),
        "sha256": st.text(max_size=4),
        "bytes": st.integers(0, 10**9),
    }
)
times = st.one_of(
    st.none(),
    st.sampled_from(
        ["", "2024-01-01T00:00:00Z", "2024-01-01T00:00:05.5+02:00", "2024-01-01 10:00:00"]
    ),
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.text(max_size=6),
)
# Each field the table reads, in the shapes a record has (and their edges: a bool, NaN, a
# negative cost, a time without a zone); `lines` then breaks one field of some lines.
FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "job": st.one_of(st.text(max_size=4), scalars),
    "files": st.lists(good_file, max_size=2),
    "missing": st.lists(st.text(max_size=3), max_size=2),
    "metrics": st.dictionaries(
        st.sampled_from(["predict_time", "input_token_count", "output_token_count", "x"]),
        scalars,
    ),
    "version": scalars,
    "files_template": scalars,
    "cost": scalars,
    "cost_before": scalars,
    "created_at": times,
    "completed_at": times,
    "api": st.one_of(
        st.fixed_dictionaries({"url": st.text(max_size=4), "sandbox": scalars}),
        st.fixed_dictionaries({"url": scalars}),
    ),
    "not_created": scalars,
    "possible_duplicate": scalars,
    "vars": st.dictionaries(st.text(max_size=3), values, max_size=3),
    "repeat": st.one_of(st.integers(0, 3), scalars),
    # Read by `records.check_unread` only: none is kept in a row, but one that is malformed
    # makes the line so, in every command.
    "target": st.dictionaries(st.text(max_size=3), scalars, max_size=2),
    "input": st.dictionaries(st.text(max_size=3), values, max_size=3),
    "attempts": st.one_of(st.integers(0, 3), scalars),
    "price": st.dictionaries(
        st.text(max_size=3), st.one_of(scalars, st.integers(10**308, 10**320)), max_size=2
    ),
}
records = st.fixed_dictionaries(
    {
        "key": st.just(KEY),
        "status": st.sampled_from([status.value for status in ALL_STATUSES]),
    },
    optional=FIELDS,
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
lines = st.one_of(
    records,
    st.tuples(records, st.sampled_from(["status", *FIELDS]), values).map(
        lambda made: {**made[0], made[1]: made[2]}
    ),
)


def _moment(text: Any) -> datetime | None:
    moment = parse_time(text) if isinstance(text, str) else None  # not a text: no time
    if moment is None or moment.tzinfo is None:
        return None  # the table keeps a naive time as if UTC, and `aware` says it is not
    return moment


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line=lines)
# The edges found so far, always tried: a time that is not a text, metrics that are not a
# mapping, a cost of 0 (priced), a bool where a number is read.
@example(line={"key": KEY, "status": "succeeded", "job": "j", "created_at": True})
@example(line={"key": KEY, "status": "succeeded", "job": "j", "metrics": "x"})
@example(line={"key": KEY, "status": "succeeded", "job": "j", "cost": 0})
@example(line={"key": KEY, "status": "failed", "job": "j", "metrics": {"predict_time": True}})
@example(line={"key": KEY, "status": "submitting", "job": "j", "repeat": math.inf})
# A field no row keeps, malformed: `status` refused none of them, `report` each (issue 22).
@example(line={"key": KEY, "status": "succeeded", "job": "j", "attempts": "x"})
@example(line={"key": KEY, "status": "succeeded", "job": "j", "input": 5})
@example(line={"key": KEY, "status": "succeeded", "job": "j", "vars": "ab"})
@example(line={"key": KEY, "status": "succeeded", "job": "j", "price": {"run": 10**400}})
def test_a_row_says_what_the_record_says(tmp_path: Path, line: dict[str, Any]) -> None:
    header = new_header(spec_path=tmp_path / "s.yaml", spec_sha256="ab" * 32, name="t", shard=None)
    text = encode_line(header) + json.dumps(line, allow_nan=True).encode() + b"\n"
    (tmp_path / "manifest.jsonl").write_bytes(text)
    (tmp_path / ".batchrun-table.bin").unlink(missing_ok=True)
    # With the variables (the report, export) or without (status, verify): the same line
    for variables in (False, True):
        try:
            record = Record.from_json(line)
        except MALFORMED:
            with pytest.raises(ManifestError, match=f"a malformed record for key '{KEY}'"):
                load_table(tmp_path, variables=variables)
            continue
        _agree(load_table(tmp_path, variables=variables), record, variables)


def _agree(table: KeyTable, record: Record, variables: bool) -> None:
    row = table.rows[record.key]
    assert table.status_of(row) == record.status
    assert table.job_of(row) == record.job
    assert table.api_of(row) == record.api
    assert table.versions.values[table.version[row]] == (
        record.version if isinstance(record.version, str) else None
    )
    assert table.templates.values[table.template[row]] == record.files_template
    assert table.files[row] == len(record.files)
    assert table.bytes[row] == sum(f.bytes for f in record.files)
    assert table.missing[row] == len(record.missing)
    assert _same(table.spent[row], record.spent)
    assert table.priced(row) == (record.estimated_cost is not None)
    assert table.not_created(row) == record.not_created
    assert table.possible_duplicate(row) == record.possible_duplicate
    for column, name in (
        (table.predict_time, "predict_time"),
        (table.input_tokens, "input_token_count"),
        (table.output_tokens, "output_token_count"),
    ):
        assert _same(column[row], _number(record.metrics.get(name)))
    for at, said in (("created", record.created_at), ("completed", record.completed_at)):
        column = table.created if at == "created" else table.completed
        found = EPOCH + timedelta(microseconds=column[row]) if table.aware(row, at) else None
        assert found == _moment(said)
    if variables:
        assert json.dumps(table.vars_of(row)) == json.dumps(record.vars)
        assert table.repeat.raws[table.repeat.places[row]] == record.repeat
