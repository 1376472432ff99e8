"""One journal line as a new row of the table: its fixed columns, files and variables."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from batchrun.api.objects import parse_time
from batchrun.manifest.keytable import (
    DUPLICATE,
    MISSING,
    NAIVE_COMPLETED,
    NAIVE_CREATED,
    NO_STATE,
    NO_TIME,
    NOT_CREATED,
    PRICED,
    STATUS_AT,
    KeyTable,
    file_checks,
)
from batchrun.manifest.records import Api, check_unread, parse_status, spent_of, usd
from batchrun.manifest.tablevalues import UNSET, Values, vars_of_line

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def append(
    table: KeyTable,
    data: dict[str, Any],
    source: int,
    offset: int,
    length: int,
    written: int,
    columns: Callable[[dict[str, Any]], tuple[str, ...]] | None,
) -> int:
    """One line as a new row. Malformed (one of MALFORMED) where `Record.from_json` would find
    it so, in any field (`check_unread` for those the row does not keep), so a manifest one
    command reads is one every command reads. Run for every line of a journal: each step is
    the cheapest that keeps `Record.from_json`'s meaning."""
    get = data.get
    check_unread(data)
    status = STATUS_AT[parse_status(data["status"])]
    job = str(data["job"])
    files = get("files") or ()
    size = 0
    for f in files:  # what FileRecord reads, so a malformed file is found here
        str(f["url"]), str(f["path"]), str(f["sha256"])
        size += int(f["bytes"])
    kept = table.files_kept
    checks = file_checks(files) if files and (kept is None or len(table.checks) < kept) else None
    missing = get("missing")
    missing = len(tuple(missing)) if missing else 0
    metrics = get("metrics") or {}
    if type(metrics) is not dict:
        metrics = dict(metrics)
    version = get("version")
    template = get("files_template")
    cost = get("cost")
    spent = spent_of(data)
    created, naive_created = _micros(get("created_at"))
    completed, naive_completed = _micros(get("completed_at"))
    flags = (
        (MISSING if missing else 0)
        | (NOT_CREATED if get("not_created") is True else 0)
        | (DUPLICATE if get("possible_duplicate") else 0)
        | (PRICED if spent or usd(cost) is not None else 0)
        | (NAIVE_CREATED if naive_created else 0)
        | (NAIVE_COMPLETED if naive_completed else 0)
    )
    row = len(table.status)
    if checks is not None:
        table.checks[row] = checks
    table.source.append(source)
    table.offset.append(offset)
    table.length.append(length)
    table.written.append(written)
    table.status.append(status)
    table.flags.append(flags)
    table.job.append(table.jobs.place(job))
    table.api.append(_api_place(table, get("api")))
    table.version.append(table.versions.place(version if isinstance(version, str) else None))
    table.template.append(table.templates.place(template if isinstance(template, str) else None))
    table.files.append(len(files))
    table.bytes.append(size)
    table.missing.append(missing)
    table.spent.append(spent)
    table.predict_time.append(_number(metrics.get("predict_time")))
    table.input_tokens.append(_number(metrics.get("input_token_count")))
    table.output_tokens.append(_number(metrics.get("output_token_count")))
    table.created.append(created)
    table.completed.append(completed)
    table.state.append(NO_STATE)
    if columns is not None:
        table.columns.append(table.names.place(columns(data)))
    return row


def variable_names(data: dict[str, Any]) -> tuple[str, ...]:
    return tuple(vars_of_line(data))


def keep_variables(table: KeyTable, data: dict[str, Any]) -> None:
    """The line's variables and repeat, in the row `append` just added (and its `columns`,
    the names of its variables: a new set of names may bring a variable no line had)."""
    found = vars_of_line(data)
    table.repeat.append(int(data.get("repeat") or 0))
    if len(table.names.values) > table._named:  # names as no line before: maybe a new one
        row = len(table.repeat.places) - 1
        for name in found:
            if name not in table.variables:
                table.variables[name] = Values(row)
        table._named = len(table.names.values)
    for name, column in table.variables.items():
        column.append(found.get(name, UNSET))


def _api_place(table: KeyTable, data: object) -> int:
    """`Api.from_json` interned, without building an Api for each line."""
    if not isinstance(data, Mapping) or not isinstance(data.get("url"), str):
        return 0  # None: the origin is unknown
    said = (data["url"], data.get("sandbox") is True)
    place = table._apis_at.get(said)
    if place is None:
        place = table._apis_at[said] = table.apis.place(Api.from_json(data))
    return place


def _number(value: object) -> float:
    if type(value) is float:  # most lines: a float, or none
        return value
    if value is None:
        return math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _micros(text: Any) -> tuple[int, bool]:
    """A timestamp as microseconds since the epoch (NO_TIME: none), and whether it was naive
    (no time zone: counted as if UTC). A value that is not a text (`Record.from_json` takes
    any) is none, as `parse_time` has a text that does not parse."""
    moment = parse_time(text) if type(text) is str else None
    if moment is None:
        return NO_TIME, False
    if moment.tzinfo is None:
        return (moment.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND, True
    return (moment - _EPOCH) // _MICROSECOND, False
