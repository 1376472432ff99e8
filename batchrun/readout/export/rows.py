"""One prediction as a flat row, and the columns rows have: key, job, variables, the rest."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from batchrun.errors import ManifestError
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import (
    MALFORMED,
    Api,
    estimated_cost_of,
    parse_status,
)
from batchrun.manifest.tablevalues import Values
from batchrun.manifest.widevalues import is_number
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
        predict_time=predict_time if is_number(predict_time) else None,
    )
    for name in TOKEN_METRICS:
        value = metrics.get(name)
        row[name] = value if is_number(value) else None
    # USD, estimated from the user's prices (docs/cost.md); None for a job without a price.
    row["cost"] = estimated_cost_of(line)
    row["error"] = get("error")
    return row


def row_of(table: KeyTable, row: int, line: dict[str, Any]) -> dict[str, Any]:
    """`export_row` of a table row's line (`KeyTable.lines_of`). The table reads only some of
    a line's fields, so one it did not read may be malformed (an `input` that is a number):
    that is the ManifestError reading its record back gives, naming the journal and the key,
    as every other reader of whole records says it."""
    try:
        return export_row(line)
    except (*MALFORMED, AttributeError):
        table.record_of(row, line)  # raises: Record.from_json refuses what export_row does
        raise ManifestError(
            f"{table.paths[table.source[row]]}: the record of {table.rows.key_of(row)} "
            "cannot be exported"
        ) from None


def output_text(output: Any) -> str | None:
    """An output as one text: a language model's text as it is, anything else as JSON."""
    if output is None or isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))


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
    of each row's variables, shared by many rows, and for a variable whose values are mappings
    the fields of each row's own value (`Values.fields_of`, in its order: what its line
    flattens to); no line is read again. Each set of names, with the fields of its mappings,
    is looked at once."""
    names, columns = table.names.values, table.columns
    shaped = {name: values for name, values in table.variables.items() if values.shapes is not None}
    variables: dict[str, None] = {}
    if not shaped:  # each set of names once, in the order rows first show it
        for group in dict.fromkeys(columns[row] for row in rows):
            variables.update(dict.fromkeys(map(variable_column, names[group])))
        return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]
    among: dict[int, list[Values]] = {}  # per set of names, its variables with mappings
    seen: set[tuple[int, ...]] = set()
    for row in rows:
        group = columns[row]
        mapped = among.get(group)
        if mapped is None:
            mapped = among[group] = [shaped[name] for name in names[group] if name in shaped]
        kind = (group, *[values.shape_places[row] for values in mapped])
        if kind in seen:
            continue
        seen.add(kind)
        for name in names[group]:
            fields = shaped[name].fields_of(row) if name in shaped else ()
            if not fields:
                variables.setdefault(variable_column(name), None)
            for field in fields:
                variables.setdefault(variable_column(f"{name}.{field}"), None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]
