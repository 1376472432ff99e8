"""One prediction as a flat row, and the columns rows have: key, job, variables, the rest."""

from __future__ import annotations

import itertools
import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from batchrun.manifest.keytable import PARSE_BATCH, KeyTable
from batchrun.manifest.records import (
    Api,
    estimated_cost_of,
    parse_status,
)
from batchrun.manifest.tablevalues import Wide, holds_mapping, vars_of_line
from batchrun.output_files import joined_output
from batchrun.planner.columns import flat_vars

# The columns every row has, in this order; variables come after `job`.
HEAD_COLUMNS = ("key", "job")
TAIL_COLUMNS = (
    "input",
    "status",
    "output",
    "files",
    "version",
    "prediction_id",
    "api",
    "predict_time",
    "input_token_count",
    "output_token_count",
    "cost",
    "error",
)
FIXED_COLUMNS = frozenset((*HEAD_COLUMNS, *TAIL_COLUMNS, "file_name", "file_index"))
# The metric names Replicate's language models report token counts under.
TOKEN_METRICS = ("input_token_count", "output_token_count")


def variable_column(name: str) -> str:
    """A variable's column: its name, or `var.NAME` where a fixed column has that name."""
    return f"var.{name}" if name in FIXED_COLUMNS else name


def export_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """One prediction as a flat row (see the module docstring), from its record's line in the
    manifest (read back, `KeyTable.lines_of`), each field read as `Record.from_json` reads it:
    a million rows are made without a `Record` each."""
    get = line.get
    row: dict[str, Any] = {"key": str(line["key"]), "job": str(line["job"])}
    for name, value in flat_vars(dict(get("vars") or {})).items():
        row[variable_column(name)] = value
    metrics = dict(get("metrics") or {})
    predict_time = metrics.get("predict_time")
    api = Api.from_json(get("api"))
    row.update(
        input=dict(get("input") or {}),
        status=parse_status(line["status"]),
        output=output_text(joined_output(get("output"))),
        files=[str(file["path"]) for file in get("files") or ()],
        version=get("version"),
        prediction_id=get("prediction_id"),
        # {url, sandbox}, as status --csv has it; None: written before records kept it.
        api=api.to_json() if api is not None else None,
        predict_time=predict_time if _is_number(predict_time) else None,
    )
    for name in TOKEN_METRICS:
        value = metrics.get(name)
        row[name] = value if _is_number(value) else None
    # USD, estimated from the user's prices (docs/cost.md); None for a job without a price.
    row["cost"] = estimated_cost_of(line)
    row["error"] = get("error")
    return row


def output_text(output: Any) -> str | None:
    """An output as one text: a language model's text as it is, anything else as JSON."""
    if output is None or isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int or (isinstance(value, int | float) and kind is not bool)


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every column the rows have: key, job, the variables in first-seen order, the rest."""
    variables: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in FIXED_COLUMNS:
                variables.setdefault(name, None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]


def table_columns(table: KeyTable, rows: Iterable[int]) -> list[str]:
    """`columns_of` the rows of these table rows (loaded with `variables=True`), from the names
    of each row's variables, shared by many rows: a row's line is read again only where a
    variable's value is a mapping (its fields are columns) that brings a column no row before
    it had, or where the variable keeps no values (`Wide`: every such row's line is read). That
    column's place comes from the line itself: a mapping equal to another as JSON, whose value
    the table keeps once, may list its fields in another order."""
    names = table.names.values
    mappings = {name for name, values in table.variables.items() if _holds_mapping(values.raws)}
    variables: dict[str, None] = {}
    if not mappings:  # each set of names once, in the order rows first show it
        for group in dict.fromkeys(table.columns[row] for row in rows):
            variables.update(dict.fromkeys(map(variable_column, names[group])))
        return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]
    wide = {name for name in mappings if table.variables[name].wide}
    plain: set[int] = set()  # sets of names without a mapping-valued variable, seen already
    for row, line in _lines_where(table, rows, lambda group: not wide.isdisjoint(names[group])):
        group = table.columns[row]
        if group in plain:
            continue
        if mappings.isdisjoint(names[group]):
            plain.add(group)
            variables.update(dict.fromkeys(map(variable_column, names[group])))
            continue
        if line is not None:  # its values are not kept: the names its line spreads them over
            found = flat_vars(vars_of_line(line))
        elif all(variable_column(name) in variables for name in flat_vars(table.vars_of(row))):
            continue
        else:
            found = flat_vars(table.record_at(row).vars)
        for name in found:
            variables.setdefault(variable_column(name), None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]


def _lines_where(
    table: KeyTable, rows: Iterable[int], wanted: Callable[[int], bool]
) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(row, the object of its line) of each of `rows`, in order, the line read back only for
    the rows whose set of names (`KeyTable.columns`) is `wanted` (else None), a batch at a
    time (`KeyTable.lines_of`)."""
    asked: dict[int, bool] = {}
    rows = iter(rows)
    while batch := list(itertools.islice(rows, PARSE_BATCH)):
        reading = []
        for row in batch:
            group = table.columns[row]
            read = asked.get(group)
            if read is None:
                read = asked[group] = wanted(group)
            if read:
                reading.append(row)
        lines = dict(table.lines_of(reading)) if reading else {}
        for row in batch:
            yield row, lines.get(row)


def _holds_mapping(raws: Sequence[Any] | Wide) -> bool:
    """Whether a variable takes a value `flat_vars` spreads over columns (a mapping, not empty)."""
    if isinstance(raws, Wide):
        return raws.mapping
    return not isinstance(raws, array) and any(map(holds_mapping, raws))
