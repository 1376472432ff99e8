"""What a run folder's manifests say: counts by status and job, failures, time and files.

Each key is also placed by `manifest.state.key_state`, the rule `plan` and `run` follow: a key
whose files were deleted or changed since it succeeded counts as to download here too, one run by
a version other than the one SPEC.lock now pins as stale, and one the other kind of API made (the
sandbox's, in a folder a real run wrote last) as new. With the spec's plan (`plan`), the status
counts every planned prediction, recorded or not, with the numbers `plan` gives; it is complete
only when every one succeeded (done, stale or to move: `run` leaves stale ones as they are
unless asked). Each record's API (`api`) is counted too: a folder may hold results of several.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from batchrun.api.objects import parse_time
from batchrun.humanize import counted
from batchrun.manifest.compare import PlanComparison
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.keytable import NO_TIME, KeyTable
from batchrun.manifest.records import ALL_STATUSES, IN_FLIGHT, UNKNOWN_API, Api, Record, Status
from batchrun.manifest.state import STATES, State, counts_as_sandbox
from batchrun.manifest.widevalues import Wide
from batchrun.planner.columns import flat_vars
from batchrun.readout import sheet

# Said of a run folder counted as the sandbox's (status, report).
SANDBOX_NOTE = "these are the sandbox's made-up results, not a real model's output"

# The states of a key that succeeded with its files: a status of only these is complete.
SUCCEEDED = frozenset({State.DONE, State.STALE, State.MOVE})

# A variable with more values than this gets no cost table in `report`: it would not be read.
MAX_COST_VALUES = 20
# The text of each value of a variable with at most this many is kept while costs are added up
# (a few hundred kB at most); one whose values are more (a seed per key) is shown row by row,
# or a million keys would keep a million texts.
SHOWN_VALUES_KEPT = 4096


@dataclass
class RunStatus:
    """A summary of every record in a run folder."""

    run_dir: Path
    manifests: list[Path]
    specs: list[str]
    counts: Counter[Status] = field(default_factory=Counter)
    jobs: dict[str, Counter[Status]] = field(default_factory=dict)
    states: Counter[State] = field(default_factory=Counter)  # keys by `key_state`
    failures: list[Record] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    missing_files: int = 0
    predict_time: float = 0.0
    first_created: datetime | None = None
    last_completed: datetime | None = None
    possible_duplicates: int = 0
    sandbox: bool = False  # counted as the sandbox's run (manifest.state.counts_as_sandbox)
    # Records by the API that made them: (URL, sandbox); (None, False) for an unknown origin.
    apis: Counter[tuple[str | None, bool]] = field(default_factory=Counter)
    # With the spec's plan: how many predictions it plans (None: no plan to count against).
    planned: int | None = None
    # What the records say their predictions cost (USD, estimated from the user's prices): in
    # all, per job, and per value of each variable (which style cost most).
    priced: int = 0
    spent: float = 0.0
    job_spent: dict[str, float] = field(default_factory=dict)
    var_spent: dict[str, dict[str, float]] = field(default_factory=dict)
    # Variables with more values priced than a cost table shows, found without their values
    # (`_crowded`): their values are not added to `var_spent`, and their tables left out.
    crowded: set[str] = field(default_factory=set)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def complete(self) -> bool:
        """Whether every key counted succeeded: done (every file in place as recorded), stale
        or to move; with a plan, every planned key, recorded or not."""
        return all(self.states[state] == 0 for state in STATES if state not in SUCCEEDED)

    def api_lines(self) -> list[str]:
        """One line per API the records came from (most first), saying which are not counted
        here (see SANDBOX_NOTE for a folder counted as the sandbox's)."""
        lines = []
        for (url, sandbox), count in sorted(self.apis.items(), key=_api_order):
            name = UNKNOWN_API if url is None else Api(url, sandbox).describe()
            line = f"{name}: {counted(count, 'prediction')}"
            if url is None:
                line += " (recorded before batchrun kept the API)"
            if sandbox != self.sandbox:
                kind = "the sandbox" if self.sandbox else "a real API"
                line += f"; not counted: new to a run on {kind}"
            lines.append(line)
        return lines

    @property
    def other_api(self) -> int:
        """Records the other kind of API made (the sandbox's, in a real run's folder)."""
        return sum(n for (_, sandbox), n in self.apis.items() if sandbox != self.sandbox)

    @property
    def in_flight(self) -> int:
        return sum(self.counts[status] for status in IN_FLIGHT)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable form `status --json` prints."""
        return {
            "run_dir": str(self.run_dir),
            "manifests": [str(path) for path in self.manifests],
            "specs": self.specs,
            "total": self.total,
            "counts": {status: self.counts[status] for status in ALL_STATUSES},
            "states": {state: self.states[state] for state in STATES},
            "jobs": {
                job: {status: counts[status] for status in ALL_STATUSES}
                for job, counts in self.jobs.items()
            },
            "failures": [
                {
                    "key": record.key,
                    "job": record.job,
                    "status": record.status,
                    "prediction_id": record.prediction_id,
                    "error": record.error,
                    "missing": list(record.missing),
                }
                for record in self.failures
            ],
            "files": self.files,
            "bytes": self.bytes,
            "missing_files": self.missing_files,
            "predict_time": round(self.predict_time, 3),
            "first_created_at": _iso(self.first_created),
            "last_completed_at": _iso(self.last_completed),
            "possible_duplicates": self.possible_duplicates,
            "planned": self.planned,
            "done": self.states[State.DONE],
            "not_started": self.states[State.NEW],
            "complete": self.complete,
            "sandbox": self.sandbox,
            "other_api": self.other_api,
            "apis": [
                {"url": url, "sandbox": sandbox, "predictions": count}
                for (url, sandbox), count in sorted(self.apis.items(), key=_api_order)
            ],
            "cost": {
                "estimated_from": "your prices",
                "total_usd": round(self.spent, 9),
                "jobs": {job: round(usd, 9) for job, usd in self.job_spent.items()},
                "priced_predictions": self.priced,
            },
        }

    def costliest(self) -> dict[str, list[tuple[str, float]]]:
        """Per variable with a few values, its values by what their predictions cost, most
        first (a variable with more values than a table shows is left out)."""
        return {
            name: sorted(values.items(), key=lambda item: -item[1])
            for name, values in self.var_spent.items()
            if 1 < len(values) <= MAX_COST_VALUES and name not in self.crowded
        }


def _api_order(item: tuple[tuple[str | None, bool], int]) -> tuple[int, str]:
    # The API with the most records first; ties by URL, an unknown origin first.
    (url, _), count = item
    return -count, url or ""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def summarize_table(
    table: KeyTable,
    rows: Iterable[int],
    pinned: Mapping[str, str | None] | None = None,
    *,
    run_dir: Path,
    plan: PlanComparison | None = None,
    hashed: HashedFiles | None = None,
    costs_by_value: bool = False,
) -> RunStatus:
    """Summarise the rows of a `KeyTable` counted (`TableScope.chosen_rows`), in order, from
    the table's columns; only the failures are read back from the journals, one record at a
    time. With `costs_by_value` (the report's cost tables; the table loaded with
    `variables=True`), what each value of each variable cost. `pinned` gives each job's
    version in the lock (`manifest.state.pins_for_reading`), for stale keys.

    With `plan` (`manifest.compare.compare` given this table), each planned key's state is the
    one the walk of the plan placed it in; any other key is placed here.
    """
    status = RunStatus(
        run_dir=run_dir,
        manifests=table.paths,
        specs=sorted({str(header.get("spec")) for header in table.headers if header.get("spec")}),
        sandbox=plan.sandbox if plan is not None else counts_as_sandbox(table.headers),
    )
    pinned = pinned or {}
    failures = array("I")  # rows: 4 bytes each, however many
    priced = array("I")
    first = last = -1
    first_at = last_at = NO_TIME
    # Keys by (job, status, API) as numbers, counted once the rows are walked: the loop below
    # runs once per key of a folder of a million.
    kinds: Counter[tuple[int, int, int]] = Counter()
    jobs_at, said_at, api_at = table.job, table.status, table.api
    job_names = table.jobs.values
    spent_of, predict_of = table.spent, table.predict_time
    created_of, completed_of = table.created, table.completed
    files_of, bytes_of, missing_of = table.files, table.bytes, table.missing
    files = size = missing = duplicates = 0
    predict_time = 0.0
    # `key_state` asked once per kind of row, not once per key (each key's files still looked at)
    place = table.placer(run_dir, pinned, sandbox=status.sandbox, hashed=hashed)
    key_of, state_of = table.rows.key_of, table.state_of
    for row in rows:
        job = jobs_at[row]
        state = state_of(row) if plan is not None else None
        if state is None:
            state = place(key_of(row), row, job_names[job])
            status.states[state] += 1  # a planned key is counted with the plan's counts below
        kinds[job, said_at[row], api_at[row]] += 1
        files += files_of[row]
        size += bytes_of[row]
        missing += missing_of[row]
        duplicates += table.possible_duplicate(row)
        if table.priced(row):
            spent = spent_of[row]
            name = job_names[job]
            status.priced += 1
            status.spent += spent
            status.job_spent[name] = status.job_spent.get(name, 0.0) + spent
            if costs_by_value:
                priced.append(row)
        if state in (State.FAILED, State.DOWNLOAD):
            failures.append(row)
        took = predict_of[row]
        if took == took:  # not NaN: the record reports one
            predict_time += took
        if table.aware(row, "created") and (first < 0 or created_of[row] < first_at):
            first, first_at = row, created_of[row]
        if table.aware(row, "completed") and (last < 0 or completed_of[row] > last_at):
            last, last_at = row, completed_of[row]
    status.files, status.bytes, status.missing_files = files, size, missing
    status.possible_duplicates, status.predict_time = duplicates, predict_time
    for (job, said, api_place), count in kinds.items():  # in the order each was first met
        name, recorded_status = job_names[job], ALL_STATUSES[said]
        api = table.apis.values[api_place]
        status.apis[(api.url, api.sandbox) if api is not None else (None, False)] += count
        status.counts[recorded_status] += count
        status.jobs.setdefault(name, Counter())[recorded_status] += count
    status.failures = list(table.records(failures))
    if first >= 0:
        status.first_created = parse_time(table.record_at(first).created_at)
    if last >= 0:
        status.last_completed = parse_time(table.record_at(last).completed_at)
    # Each value of each variable shown as text once, not once per priced key.
    shown_at: dict[tuple[str, int], list[tuple[str, str]]] = {}
    status.crowded = _crowded(table, priced)
    names, columns, variables = table.names.values, table.columns, table.variables
    for row in priced:
        spent = spent_of[row]
        for name in names[columns[row]]:
            if name not in status.crowded:
                at = variables[name].places[row]
                _add_value_costs(status, spent, _shown(table, name, at, shown_at))
    if plan is not None:
        status.planned = plan.total
        for state in STATES:
            status.states[state] += plan.count(state)
    return status


def failure_reason(record: Record) -> str:
    """Why a key counts among the failures, in a few words."""
    if record.error:
        return record.error
    if record.missing:
        return f"{len(record.missing)} files missing"
    if record.status == Status.SUCCEEDED:
        return "its files were deleted or changed since it succeeded"
    return record.status


def _shown(
    table: KeyTable,
    name: str,
    place: int,
    shown_at: dict[tuple[str, int], list[tuple[str, str]]],
) -> list[tuple[str, str]]:
    """A variable's value (`KeyTable.value_at`) as `flat_vars` flattens it, each part as the
    cost table shows it (`_shown_value`); `shown_at` keeps each (variable, place) made once,
    but of a variable with more values than SHOWN_VALUES_KEPT, or a `Wide` one's mappings
    (each read back from its line)."""
    found = shown_at.get((name, place))
    if found is None:
        flat = flat_vars({name: table.value_at(name, place)})
        found = [(flat_name, _shown_value(value)) for flat_name, value in flat.items()]
        raws = table.variables[name].raws
        few = not raws.mapping if isinstance(raws, Wide) else len(raws) <= SHOWN_VALUES_KEPT
        if few:  # a `Wide` variable without mappings: not `_crowded`, so few values priced
            shown_at[name, place] = found
    return found


def _crowded(table: KeyTable, priced: Sequence[int]) -> set[str]:
    """The variables whose values the table does not keep (`Wide`, none a mapping) that take
    more than twice MAX_COST_VALUES of them in the `priced` rows: each shows as one text (at
    most two values as the same, `1` and `"1"`), so their cost tables would be left out, which
    is known from their places, without reading a value back."""
    crowded = set()
    for name, values in table.variables.items():
        raws, places = values.raws, values.places
        if not isinstance(raws, Wide) or raws.mapping:
            continue
        seen: set[int] = set()
        for row in priced:
            if places[row]:  # 0: the row does not set it
                seen.add(places[row])
                if len(seen) > 2 * MAX_COST_VALUES:
                    crowded.add(name)
                    break
    return crowded


def _add_value_costs(status: RunStatus, spent: float, shown: Iterable[tuple[str, str]]) -> None:
    for name, value in shown:
        values = status.var_spent.setdefault(name, {})
        if len(values) > MAX_COST_VALUES and value not in values:
            continue  # too many values to show: stop growing (the table leaves it out)
        values[value] = values.get(value, 0.0) + spent


def _shown_value(value: Any) -> str:
    if type(value) is int:
        return str(value)  # what json.dumps writes for an int, at a fraction of its cost
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


CSV_COLUMNS = (
    "key",
    "job",
    "status",
    "target",
    "vars",
    "input",
    "prediction_id",
    "version",
    "output",
    "files",
    "error",
    "predict_time",
    "created_at",
    "completed_at",
    "attempts",
    "api",  # {"url", "sandbox"} as the record has it; empty: written before it was kept
    "cost",  # USD, estimated from the user's prices (docs/cost.md); empty: no price
)


def write_csv(records: Iterable[Record], handle: IO[str]) -> int:
    """Write the CSV (header, then one row per record) to an open text stream; the row count."""
    return sheet.write_csv(handle, CSV_COLUMNS, (_csv_row(record) for record in records))


def _csv_row(record: Record) -> tuple[Any, ...]:
    target = record.target
    return (
        record.key,
        record.job,
        record.status,
        target.get("model") or target.get("deployment") or target.get("version"),
        record.vars,
        record.input,
        record.prediction_id,
        record.version,
        record.shown_output,
        " ".join(f.path for f in record.files),
        record.error,
        record.metrics.get("predict_time"),
        record.created_at,
        record.completed_at,
        record.attempts,
        record.api.to_json() if record.api is not None else None,
        record.estimated_cost,
    )
