"""The manifest's record schema: a key's `Record`, its `FileRecord`s, and the statuses a record
can be in (`Status`). One record is one line of the journal (see reader.py and writer.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from batchrun.output_files import joined_output
from batchrun.planner.expand import PlannedPrediction
from batchrun.planner.naming import FileNamer

FORMAT = 1
WRITTEN = "written_ns"  # on every record line: when it was written (ns since the epoch)


class Status(StrEnum):
    """Where one prediction stands, as its record says.

    The API's statuses, plus two of batchrun's own: `submitting` is written (and flushed) before
    a create is sent; `error` means the API refused the request (a 422, say), so no prediction
    exists (and with `not_created`, that the key counts as not started: see `Record`). A
    StrEnum: it is written to the manifest, compared and printed as its plain value.
    """

    SUBMITTING = "submitting"
    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    ABORTED = "aborted"
    ERROR = "error"


IN_FLIGHT = frozenset({Status.SUBMITTING, Status.STARTING, Status.PROCESSING})
FAILED = frozenset({Status.FAILED, Status.CANCELED, Status.ABORTED, Status.ERROR})
ALL_STATUSES = tuple(Status)  # in the order people read them: submitted → running → ended
# The statuses a prediction object from the API can have that a record keeps as they are.
API_STATUSES = frozenset(Status) - {Status.SUBMITTING, Status.ERROR}
_BY_VALUE = {status.value: status for status in Status}


def parse_status(value: object) -> Status:
    """A record's status from its JSON; ValueError when it is not one of `Status`."""
    # A dict lookup, not Status(value): load_index calls this for every line of the journal.
    status = _BY_VALUE.get(value) if isinstance(value, str) else None
    if status is None:
        raise ValueError(f"unknown status {value!r}")
    return status


@dataclass(frozen=True, slots=True)
class Api:
    """The API a prediction ran on: its base URL as batchrun used it, and whether it was the
    sandbox (`--sandbox`, or a server that answered with the sandbox's marker header).

    Written on every record line as `"api": {"url": ..., "sandbox": ...}`. A record without it
    was written before batchrun kept it: its origin is unknown, and it counts as not the
    sandbox's (`Record.sandbox`), but is shown as "unknown".
    """

    url: str
    sandbox: bool

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "sandbox": self.sandbox}

    @classmethod
    def from_json(cls, data: object) -> Api | None:
        """The `api` field of a record or header line; None when absent (origin unknown)."""
        # A dict is a Mapping, asked first: the abstract class's check costs 20 times more, and
        # an export asks for every record it writes.
        if not (type(data) is dict or isinstance(data, Mapping)):
            return None
        if not isinstance(data.get("url"), str):
            return None
        return cls(url=data["url"], sandbox=data.get("sandbox") is True)

    def describe(self) -> str:
        """How people read it: the URL, and "(sandbox)" when it was."""
        return f"{self.url} (sandbox)" if self.sandbox else self.url


# A cost's decimal places in a CSV: below a billionth of a dollar is a sum's float noise
# (0.01 + 0.02 = 0.030000000000000002), which a spreadsheet would show as it is.
COST_PLACES = 9
UNKNOWN_API = "unknown"
# What reading a malformed record line raises (`Record.from_json`, and each reader that keeps
# its meaning): a field missing or of the wrong shape, and an integer field that holds an
# infinity (JSON's 1e999), which `int` refuses with an OverflowError.
MALFORMED = (
    KeyError,
    TypeError,
    ValueError,
    OverflowError,
)  # how a record written before `api` existed shows its origin


def sandbox_of(data: Mapping[str, Any]) -> bool | None:
    """Whether a record or header line says it ran on the sandbox; None when it does not say.

    The one rule for the `api` field: only `"sandbox": true` is the sandbox; a line without
    `api` is of unknown origin, which every rule that must decide treats as not the sandbox.
    """
    api = Api.from_json(data.get("api"))
    return None if api is None else api.sandbox


def utcnow() -> str:
    """The current time as an ISO 8601 string in UTC, as the API writes them."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One downloaded output file; `path` is relative to the run folder."""

    url: str
    path: str
    sha256: str
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "path": self.path, "sha256": self.sha256, "bytes": self.bytes}


@dataclass(frozen=True, slots=True)
class Record:
    """The state of one planned prediction, as one manifest line holds it."""

    key: str
    job: str
    target: dict[str, str]
    input: dict[str, Any]
    vars: dict[str, Any]
    repeat: int
    status: Status
    prediction_id: str | None = None
    version: str | None = None
    output: Any = None
    files: tuple[FileRecord, ...] = ()
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    attempts: int = 0
    # batchrun's own (docs/manifest.md): the sha256 of the input as sent (files resolved), used to
    # find a prediction whose create answer was lost; and a flag for keys that may have run twice
    # because the API had no list endpoint to reconcile with.
    request_sha256: str | None = None
    possible_duplicate: bool = False
    # URLs the output held that could not be downloaded yet (expired links, a full disk...).
    missing: tuple[str, ...] = ()
    # The `files` template that named the recorded files (None: written before it was kept).
    # A run whose template differs moves them (manifest/state.py).
    files_template: str | None = None
    # The API the prediction was created on (None: written before batchrun kept it).
    api: Api | None = None
    # No prediction exists for this key and none may: its create was refused for a reason that
    # is not the key's own (the token, the base URL, the model's name, a field every create of
    # its job gets wrong), or was never sent (the run stopped first). The key counts as not
    # started (manifest/state.py), so the run after the fix creates it without --retry-failed.
    # Its status is `error`, which a batchrun that predates the field reads as failed.
    not_created: bool = False
    # What the key's latest prediction cost (USD, estimated from the user's prices: batchrun/
    # cost.py), the price it was estimated with, and what its earlier predictions cost (a retry
    # creates again). None: not known yet, or the job has no price.
    cost: float | None = None
    price: dict[str, float] | None = None
    cost_before: float = 0.0

    def replace(self, **changes: Any) -> Record:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def shown_output(self) -> Any:
        """The output as people read it: a language model's token list joined into its text."""
        return joined_output(self.output)

    @property
    def sandbox(self) -> bool:
        """Whether the sandbox made it (an unknown origin counts as not: see `Api`)."""
        return self.api is not None and self.api.sandbox

    @property
    def spent(self) -> float:
        """What every prediction this key made has cost, as far as it is known (USD)."""
        return (self.cost or 0.0) + self.cost_before

    @property
    def estimated_cost(self) -> float | None:
        """`spent` as the CSVs show it (USD, estimated from the user's prices); None when no
        prediction of this key was priced (the job has no price, or none has ended yet)."""
        return estimated_cost(self.cost, self.cost_before)

    @property
    def terminal(self) -> bool:
        return self.status not in IN_FLIGHT

    def file_path(self, namer: FileNamer, index: int, url: str, output: str | None) -> str:
        """Where `namer` (a job's `files` template) puts this key's output file `index`,
        fetched from `url` (`output`: the name the output gives it); NamingError if it cannot."""
        return namer.path_for(
            job=self.job,
            key=self.key,
            index=index,
            url=url,
            repeat=self.repeat,
            vars=self.vars,
            output=output,
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "key": self.key,
            "job": self.job,
            "target": self.target,
            "input": self.input,
            "vars": self.vars,
            "repeat": self.repeat,
            "status": self.status,
            "prediction_id": self.prediction_id,
            "version": self.version,
            "output": self.output,
            "files": [f.to_json() for f in self.files],
            "error": self.error,
            "metrics": self.metrics,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "attempts": self.attempts,
        }
        if self.request_sha256:
            data["request_sha256"] = self.request_sha256
        if self.possible_duplicate:
            data["possible_duplicate"] = True
        if self.missing:
            data["missing"] = list(self.missing)
        if self.files_template is not None:
            data["files_template"] = self.files_template
        if self.api is not None:
            data["api"] = self.api.to_json()
        if self.not_created:
            data["not_created"] = True
        if self.cost is not None:
            data["cost"] = round(self.cost, 9)
            data["price"] = self.price or {}
        if self.cost_before:
            data["cost_before"] = round(self.cost_before, 9)
        return data

    @classmethod
    def planned(cls, planned: PlannedPrediction, status: Status = Status.SUBMITTING) -> Record:
        """A fresh record of a planned prediction: the plan's view of it, nothing run yet."""
        data = planned.to_json()
        return cls(
            key=planned.key,
            job=planned.job,
            target=data["target"],
            input=data["input"],
            vars=data["vars"],
            repeat=planned.repeat,
            status=status,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        """Read a record line; raises one of MALFORMED on a malformed one."""
        files = tuple(
            FileRecord(str(f["url"]), str(f["path"]), str(f["sha256"]), int(f["bytes"]))
            for f in data.get("files") or ()
        )
        return cls(
            key=str(data["key"]),
            job=str(data["job"]),
            target=dict(data.get("target") or {}),
            input=dict(data.get("input") or {}),
            vars=dict(data.get("vars") or {}),
            repeat=int(data.get("repeat") or 0),
            status=parse_status(data["status"]),
            prediction_id=data.get("prediction_id"),
            version=data.get("version"),
            output=data.get("output"),
            files=files,
            error=data.get("error"),
            metrics=dict(data.get("metrics") or {}),
            created_at=data.get("created_at"),
            started_at=data.get("started_at"),
            completed_at=data.get("completed_at"),
            attempts=int(data.get("attempts") or 0),
            request_sha256=data.get("request_sha256"),
            possible_duplicate=bool(data.get("possible_duplicate")),
            missing=tuple(data.get("missing") or ()),
            files_template=_text_or_none(data.get("files_template")),
            api=Api.from_json(data.get("api")),
            not_created=data.get("not_created") is True,
            cost=usd(data.get("cost")),
            price=_price(data.get("price")),
            cost_before=usd(data.get("cost_before")) or 0.0,
        )


def check_unread(data: Mapping[str, Any]) -> None:
    """Raise what `Record.from_json` raises (one of MALFORMED) for a malformed field among
    those a table row does not keep (target, input, vars, repeat, attempts, price), so that a
    line one command finds malformed every command does, whichever fields it reads. A field of
    its usual shape costs a type check: the conversion runs only for one of another."""
    get = data.get
    for name in ("target", "input", "vars"):
        value = get(name)
        if value and type(value) is not dict:
            dict(value)
    for name in ("repeat", "attempts"):
        value = get(name)
        if value and type(value) is not int:
            int(value)
    price = get("price")
    if type(price) is dict:
        for amount in price.values():
            if type(amount) is int:
                usd(amount)  # past a float's range: an OverflowError, as `_price` has


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def usd(value: object) -> float | None:
    """A record's amount of USD (`cost`, `cost_before`, a price): a number not below 0, as a
    float; None for anything else (a bool, a text, a negative number). Past a float's range:
    an OverflowError (one of MALFORMED)."""
    if type(value) is float:  # most lines: a check, not two of a union
        return value if value >= 0 else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def _price(value: object) -> dict[str, float] | None:
    if not isinstance(value, dict):
        return None
    return {str(name): float(amount) for name, amount in value.items() if usd(amount) is not None}


def estimated_cost(cost: float | None, cost_before: float) -> float | None:
    """What a key's predictions cost as the CSVs show it (`Record.estimated_cost`)."""
    if cost is None and not cost_before:
        return None
    return round((cost or 0.0) + cost_before, COST_PLACES)


def estimated_cost_of(data: Mapping[str, Any]) -> float | None:
    """`Record.estimated_cost` of a record line, read as `Record.from_json` reads it."""
    return estimated_cost(usd(data.get("cost")), usd(data.get("cost_before")) or 0.0)


def spent_of(data: Mapping[str, Any]) -> float:
    """What a record line says its key's predictions cost (USD), without reading it whole."""
    return (usd(data.get("cost")) or 0.0) + (usd(data.get("cost_before")) or 0.0)
