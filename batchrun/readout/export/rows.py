"""One prediction as a flat row, and the columns rows have: key, job, variables, the rest."""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import (
    Api,
    estimated_cost_of,
    parse_status,
)
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
    it had. That column's place comes from the line itself: a mapping equal to another as JSON,
    whose value the table keeps once, may list its fields in another order."""
    names = table.names.values
    mappings = {name for name, values in table.variables.items() if _holds_mapping(values.raws)}
    variables: dict[str, None] = {}
    if not mappings:  # each set of names once, in the order rows first show it
        for group in dict.fromkeys(table.columns[row] for row in rows):
            variables.update(dict.fromkeys(map(variable_column, names[group])))
        return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]
    plain: set[int] = set()  # sets of names without a mapping-valued variable, seen already
    for row in rows:
        group = table.columns[row]
        if group in plain:
            continue
        if mappings.isdisjoint(names[group]):
            plain.add(group)
            variables.update(dict.fromkeys(map(variable_column, names[group])))
            continue
        if all(variable_column(name) in variables for name in flat_vars(table.vars_of(row))):
            continue
        for name in flat_vars(table.record_at(row).vars):
            variables.setdefault(variable_column(name), None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]


def _holds_mapping(raws: Sequence[Any]) -> bool:
    """Whether a variable takes a value `flat_vars` spreads over columns (a mapping, not empty)."""
    return not isinstance(raws, array) and any(isinstance(raw, Mapping) and raw for raw in raws)
