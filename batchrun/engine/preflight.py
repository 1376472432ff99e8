"""The online pre-flight: before the first create, ask the API about each distinct target once.

    result = await preflight(spec, client, lock=lock, jobs=["flux"])
    result.issues      # SpecIssues placed in the spec: no such model, inputs the model refuses
    result.notes       # one line per check that could not be made (the API has no endpoint)
    result.confirmed   # jobs whose target the API confirmed exists

For each target: the model (`GET /v1/models/{owner}/{name}`), the version
(`.../versions/{id}`) or the deployment (`GET /v1/deployments/{owner}/{name}`) exists. A 404
means "no such target" only from an API that has the endpoint at all (`GET /v1/models` answers);
a proxy without it gets a note and the run goes on. Where the version publishes its Cog schema
(`openapi_schema.components.schemas.Input`), every planned input is checked against it: fields
the model does not declare (Replicate silently ignores them: a typo is paid for) with a
did-you-mean, then types, enums and minimum/maximum with jsonschema, every problem at once.
A 401/403 is not caught here: it ends the run before anything is created.

Checking a million inputs field by field would be slow; values repeat across rows, so each
(field, value) pair is checked once, and a field the job sets to one value in every row, once
per job. A run given `--shard`, `--sample` or `--limit` checks only the inputs they select
(`selection`, with the survey's sampled keys): `run --limit 1` checks one input.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from batchrun.api.objects import Deployment, Model, ModelVersion
from batchrun.cost import SchemaCount
from batchrun.engine.modelschema import FieldChecker, refusal
from batchrun.errors import (
    InvalidRequestError,
    NotFoundError,
    ServerError,
    SpecIssue,
)
from batchrun.humanize import printable
from batchrun.manifest.preflight import (
    COUNTS_KEY,
    RECORD_FORMAT,
    counts_json,
    read_record,
    recorded_counts,
    write_record,
)
from batchrun.planner.expand import MULTI_OUTPUT_FIELDS, PlannedPrediction, iter_plan
from batchrun.planner.keys import FileInput
from batchrun.planner.lock import Lock, lock_path
from batchrun.planner.sample import Selection, iter_selected
from batchrun.spec.describe import did_you_mean, join_names, show, show_row
from batchrun.spec.jobs import Job
from batchrun.spec.load import Spec
from batchrun.spec.target import Target
from batchrun.spec.template import Template

# Problems listed per job and field: one fix usually mends them all.
PROBLEMS_PER_FIELD = 3
# Allowed values quoted when a value is not one of them: enough to see what is meant; a long
# enum is the schema's to read, not the terminal's.
ENUM_SHOWN = 10
# A model's input names listed when a spec names one it lacks (and no name is close).
NAMES_SHOWN = 20
# Characters of a schema's own text (a pattern, a validator's message) quoted in a message.
SCHEMA_TEXT_SHOWN = 200
# A local file is sent as a URL or a data URI: a string, as far as a schema can tell.
FILE_STAND_IN = "data:application/octet-stream;base64,"
# Answers jsonschema gave that the pre-flight keeps, by (field, value), before it forgets them
# all and starts again: a value that fits its field's type or bounds at a glance (a prompt per
# row) is never kept (every answer kept held about 170 bytes a row until the last input was
# checked: 8.7 MB of a run of 50,000, its peak resident set); the others are the few values of
# an axis, or new in each row (floats, patterns), where keeping them all would grow as much.
ANSWERS_KEPT = 4096


class ModelApi(Protocol):
    """What the pre-flight asks of a client (`batchrun.api.client.Client`)."""

    base_url: str

    async def get_model(self, owner: str, name: str) -> Model: ...

    async def get_version(self, owner: str, name: str, version_id: str) -> ModelVersion: ...

    async def get_deployment(self, owner: str, name: str) -> Deployment: ...

    async def has_endpoint(self, collection: str) -> bool: ...


@dataclass(frozen=True)
class TargetFound:
    """What the API said of one target: it exists (True), does not (False), or cannot say."""

    exists: bool | None
    schema: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""
    # A 404 from an API that does not list the collection: no such target, or no such
    # endpoint. Another lookup of the same kind that the API answered settles it.
    unsure_404: str = ""


@dataclass
class PreflightResult:
    """Everything the pre-flight found."""

    issues: list[SpecIssue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    confirmed: set[str] = field(default_factory=set)
    # By target as the spec writes it: what its schema says of `num_outputs` (for the estimate
    # and the budget, batchrun.cost.images_asked).
    counts: dict[str, SchemaCount] = field(default_factory=dict)


def describe_target(target: Target) -> str:
    """`model a/b`, `version a/b:123…`, `deployment a/b`: a target as a sentence names it."""
    if target.kind == "deployment":
        return f"deployment {target.model}"
    if target.kind == "model":
        return f"model {target.model}"
    return f"version {target}"


async def preflight(
    spec: Spec,
    client: ModelApi,
    *,
    lock: Lock | None = None,
    jobs: Collection[str] | None = None,
    selection: Selection | None = None,
    sampled: frozenset[str] | None = None,
) -> PreflightResult:
    """Ask the API about each distinct target of the chosen jobs, then check their inputs: the
    ones `selection` selects (`sampled`: its sample's keys, where the caller has them)."""
    result = PreflightResult()
    chosen = [job for job in spec.jobs if jobs is None or job.id in jobs]
    targets = {job.id: lock.resolve(job.target) if lock else job.target for job in chosen}
    found: dict[Target, TargetFound] = {}
    endpoints: dict[str, bool] = {}
    for target in targets.values():
        if target not in found:
            found[target] = await _ask(client, target, endpoints)
    _settle_404s(found, client.base_url)
    noted: set[Target] = set()
    for job in chosen:
        target = targets[job.id]
        answer = found[target]
        if answer.note and target not in noted:
            noted.add(target)
            result.notes.append(answer.note)
        if answer.exists is False:
            pinned = target != job.target  # the lock gave it a version: it may be the typo
            result.issues.append(_no_such_target(spec, job, target, client.base_url, pinned))
            continue
        if answer.exists:
            result.confirmed.add(job.id)
            result.counts[str(job.target)] = schema_count(answer.schema)
        if answer.exists and not _input_schema(answer.schema):
            result.notes.append(
                f"batchrun: the API publishes no input schema for {describe_target(target)};"
                f" the inputs of job '{job.id}' were not checked against it"
            )
        elif answer.exists:
            refused = refusal(answer.schema.get("components"))
            if refused:
                result.notes.append(
                    f"batchrun: the input schema of the {describe_target(target)} cannot be"
                    f" checked safely: {printable(refused)}; the inputs of job '{job.id}' were"
                    " not checked against it"
                )
                continue
            _, issues, notes = check_inputs(
                spec, job, answer.schema, selection=selection, sampled=sampled
            )
            result.issues.extend(issues)
            result.notes.extend(notes)
    return result


async def _ask(client: ModelApi, target: Target, endpoints: dict[str, bool]) -> TargetFound:
    async def has(collection: str) -> bool:
        if collection not in endpoints:
            endpoints[collection] = await client.has_endpoint(collection)
        return endpoints[collection]

    what = describe_target(target)
    try:
        if target.kind == "model":
            model = await client.get_model(target.owner, target.name)
            return TargetFound(True, model.openapi_schema)
        if target.kind == "deployment":
            deployment = await client.get_deployment(target.owner, target.name)
            return await _deployment_schema(client, deployment)
        if not target.owner:
            return TargetFound(
                None,
                note=f"batchrun: cannot check that the {what} exists: the API looks a version"
                " up under its model's name, which the spec does not give; the run goes on",
            )
        version = await client.get_version(target.owner, target.name, target.version)
        return TargetFound(True, version.openapi_schema)
    except NotFoundError:
        collection = "deployments" if target.kind == "deployment" else "models"
        try:
            listed = await has(collection)
        except (ServerError, InvalidRequestError):
            listed = False
        if not listed:
            return TargetFound(None, unsure_404=what)
        return TargetFound(False)
    except (ServerError, InvalidRequestError) as error:
        # An answer that says nothing for sure (a 5xx after retries, a body that is not a
        # model): the pre-flight cannot tell, and the creates will.
        return TargetFound(
            None,
            note=f"batchrun: cannot check the {what}: {printable(str(error))}; the run goes on",
        )


def _settle_404s(found: dict[Target, TargetFound], base_url: str) -> None:
    """Decide what each unsure 404 means, now that every target was asked about: where the
    API answered a lookup of the same kind, it has the endpoint, and the target is not there;
    else either may be missing, and the note says so. (Each kind of target is asked about
    at an endpoint of its own: one that answered for one target is there for all its kind.)"""
    answered = {target.kind for target, answer in found.items() if answer.exists}
    for target, answer in found.items():
        if not answer.unsure_404:
            continue
        if target.kind in answered:
            found[target] = TargetFound(False)
            continue
        what = answer.unsure_404
        place = "deployments" if target.kind == "deployment" else "models"
        found[target] = TargetFound(
            None,
            note=f"batchrun: cannot tell whether the {what} exists: the API at {base_url}"
            f" answered 404 (no {what} here, or no {place} endpoint); the run goes on",
        )


async def _deployment_schema(client: ModelApi, deployment: Deployment) -> TargetFound:
    owner, _, name = (deployment.model or "").partition("/")
    if not (owner and name and deployment.version):
        return TargetFound(True)
    try:
        version = await client.get_version(owner, name, deployment.version)
    except NotFoundError:
        return TargetFound(True)
    return TargetFound(True, version.openapi_schema)


def _no_such_target(spec: Spec, job: Job, target: Target, base_url: str, pinned: bool) -> SpecIssue:
    if target.kind == "deployment":
        where = "deployment"
    elif target.kind == "version" and not job.target.owner:
        where = "version"
    else:
        where = "model"
    # The file that pinned the version, by its name: a hint names what is actually in use.
    also = f" (and {lock_path(spec.path).name}, which pins it)" if pinned else ""
    message = (
        f"the API at {base_url} has no {describe_target(target)}; check its spelling{also},"
        " and the base URL: a proxy serves the API under a path, like https://host/replicate"
    )
    return spec.issue((*job.path, where), message)


def _input_schema(schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    components = schema.get("components")
    schemas = components.get("schemas") if isinstance(components, Mapping) else None
    found = schemas.get("Input") if isinstance(schemas, Mapping) else None
    if isinstance(found, Mapping) and isinstance(found.get("properties"), Mapping):
        return found if found["properties"] else None
    return None


def schema_count(schema: Mapping[str, Any]) -> SchemaCount:
    """What a version's published schema says of `num_outputs` (its default, if any)."""
    found = _input_schema(schema)
    return SchemaCount.of_input(found["properties"] if found is not None else None)


def several_files(schema: Mapping[str, Any]) -> bool:
    """Whether the schema's Output may hold several files (a list of URLs, or a mapping)."""
    components = schema.get("components")
    schemas = components.get("schemas") if isinstance(components, Mapping) else None
    output = schemas.get("Output") if isinstance(schemas, Mapping) else None
    if not isinstance(output, Mapping):
        return False
    if output.get("type") == "object":
        return True
    items = output.get("items")
    return (
        output.get("type") == "array"
        and isinstance(items, Mapping)
        and items.get("format") == "uri"
    )


def check_inputs(
    spec: Spec,
    job: Job,
    schema: Mapping[str, Any],
    *,
    selection: Selection | None = None,
    sampled: frozenset[str] | None = None,
) -> tuple[int, list[SpecIssue], list[str]]:
    """Every planned input of `job` (that `selection` selects, if given) against the Cog schema
    (one that `refusal` passed): (inputs checked, issues, notes on what could not be checked)."""
    input_schema = _input_schema(schema)
    assert input_schema is not None
    properties: Mapping[str, Any] = input_schema["properties"]
    open_ended = input_schema.get("additionalProperties") is True
    required = [name for name in input_schema.get("required", ()) if isinstance(name, str)]
    validator = _FieldValidator(schema)
    problems: dict[tuple[str, str], _Problem] = {}
    # Fields the job sets to the same value in every row: one that fits is not checked again.
    constant = {name for name, value in job.input.items() if not _templated(value)}
    fitting: set[str] = set()
    checked = 0
    for planned in _inputs_of(spec, job, selection, sampled):
        checked += 1
        input = planned.input
        for name in required:
            if name not in input:
                _add(problems, (name, "required"), planned.vars, f"the model requires '{name}'")
        for name, value in input.items():
            if name in fitting:
                continue
            if name not in properties:
                if not open_ended:
                    _add(problems, (name, "unknown"), planned.vars, "")
                continue
            said = validator.check(name, value)
            if said is None and name in constant:
                fitting.add(name)
            if said is not None:
                _add(problems, (name, said[0]), planned.vars, said[1])
    issues = [_issue(spec, job, key, problem, properties) for key, problem in problems.items()]
    # (A job that asks for several outputs by name was told so offline, by the planner.)
    asks = any(name in job.input for name in MULTI_OUTPUT_FIELDS)
    if several_files(schema) and not _names_several(spec.files_of(job)) and not asks:
        message = (
            f"the {describe_target(job.target)} returns a list of files, but the files"
            " template has no ${index} or ${output} to tell them apart"
        )
        issues.append(spec.issue(spec.files_path(job), message))
    notes = [
        f"batchrun: the pattern {show(printable(pattern, SCHEMA_TEXT_SHOWN))} in the input schema"
        f" of the {describe_target(job.target)} was not checked: {printable(why)}"
        for pattern, why in validator.fields.skipped.items()
    ]
    return checked, issues, notes


def _inputs_of(
    spec: Spec, job: Job, selection: Selection | None, sampled: frozenset[str] | None
) -> Iterator[PlannedPrediction]:
    if not selection:
        yield from iter_plan(spec, jobs=[job.id])
        return
    for planned in iter_selected(spec, selection, sampled=sampled):
        if planned.job == job.id:
            yield planned


def _templated(value: Any) -> bool:
    """Whether an input's value in the spec changes from row to row (it names a variable)."""
    return "${" in json.dumps(value, default=str)


def _names_several(files: str) -> bool:
    return bool(Template.compile(files).variables & {"index", "output"})


@dataclass
class _Problem:
    message: str
    row: Mapping[str, Any]
    count: int = 1


def _add(
    problems: dict[tuple[str, str], _Problem],
    key: tuple[str, str],
    row: Mapping[str, Any],
    message: str,
) -> None:
    found = problems.get(key)
    if found is not None:
        found.count += 1
        return
    same_field = sum(1 for name, _ in problems if name == key[0])
    if same_field < PROBLEMS_PER_FIELD:
        problems[key] = _Problem(message, row)


def _issue(
    spec: Spec,
    job: Job,
    key: tuple[str, str],
    problem: _Problem,
    properties: Mapping[str, Any],
) -> SpecIssue:
    name, kind = key
    target = describe_target(job.target)
    if kind == "unknown":
        guess = did_you_mean(name, properties)
        names = sorted(properties)
        more = f" and {len(names) - NAMES_SHOWN:,} more" if len(names) > NAMES_SHOWN else ""
        listed = join_names(printable(n, SCHEMA_TEXT_SHOWN) for n in names[:NAMES_SHOWN])
        hint = (
            f"did you mean {show(printable(guess, SCHEMA_TEXT_SHOWN))}?"
            if guess
            else f"its inputs are {listed}{more}"
        )
        message = (
            f"the {target} has no input '{name}'; {hint} (Replicate ignores inputs a model"
            " does not declare, so this one would be paid for and have no effect)"
        )
    elif kind == "required":
        return spec.issue((*job.path, "input"), f"{problem.message}, which the input lacks")
    else:
        message = f"the {target} refuses this value: {problem.message}"
        if problem.row and _templated(job.input.get(name)):
            more = f" and {problem.count - 1} more" if problem.count > 1 else ""
            message += f"; in the row {show_row(problem.row)}{more}"
    path = (*job.path, "input", name) if name in job.input else (*job.path, "input")
    return spec.issue(path, message)


class _FieldValidator:
    """Each input field against its property schema: a value that fits at a glance at once,
    any other by jsonschema once (of the last `ANSWERS_KEPT` distinct ones)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        # Cog puts enums in components and points at them with $ref: keep the components
        # as the root, so references resolve (and only there: batchrun.engine.modelschema).
        self.fields = FieldChecker(schema.get("components", {}))
        self._said: dict[tuple[str, Any, Any], tuple[str, str] | None] = {}

    def check(self, name: str, value: Any) -> tuple[str, str] | None:
        """(the rule broken, a sentence saying how), or None if the value fits."""
        key: tuple[str, Any, Any]
        if type(value) in _PLAIN:
            if self.fields.fits(name, value):
                return None  # quicker than the memo, and nothing kept
            # A plain value is its own key (with its type: True == 1 and 1 == 1.0 in Python).
            key = (name, type(value), value)
        else:
            value = _as_sent(value)
            try:
                text = json.dumps(value, sort_keys=True, separators=(",", ":"))
            except (TypeError, ValueError):
                return None
            key = (name, None, text)
        if key in self._said:
            return self._said[key]
        error = self.fields.check(name, value)
        said = (str(error.validator), _sentence(error, value)) if error is not None else None
        if len(self._said) >= ANSWERS_KEPT:
            self._said.clear()  # a value met again later is checked again, once
        self._said[key] = said
        return said


# Values that are their own cache key: equal only when JSON would write them alike. (A float is
# not among them: -0.0 == 0.0, and NaN equals nothing, so it would never be found again.)
_PLAIN = frozenset((str, int, bool, type(None)))


def _as_sent(value: Any) -> Any:
    if isinstance(value, FileInput):
        return FILE_STAND_IN
    if isinstance(value, Mapping):
        return {str(k): _as_sent(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_sent(v) for v in value]
    return value


def _sentence(error: Any, value: Any) -> str:
    # The schema's words are the server's: each is shown cleaned of escapes and cut short.
    return printable(_said(error, value), SCHEMA_TEXT_SHOWN * 4)


def _said(error: Any, value: Any) -> str:
    validator = error.validator
    expected = error.validator_value
    if validator == "enum" and isinstance(expected, list):
        allowed = ", ".join(show(item) for item in expected[:ENUM_SHOWN])
        if len(expected) > ENUM_SHOWN:
            allowed += f" and {len(expected) - ENUM_SHOWN:,} more"
        return f"{show(value)} is not one of {allowed}"
    if validator == "minimum":
        return f"{show(value)} is less than the minimum {show(expected)}"
    if validator == "maximum":
        return f"{show(value)} is more than the maximum {show(expected)}"
    if validator == "type":
        names = expected if isinstance(expected, str) else " or ".join(map(str, expected))
        return f"{show(value)} is not of type {printable(names, SCHEMA_TEXT_SHOWN)}"
    if validator == "pattern":
        return f"{show(value)} does not match the pattern {show(str(expected))}"
    return printable(str(error.message), SCHEMA_TEXT_SHOWN)


# The record of a passed pre-flight, in the run folder (batchrun.manifest.preflight): a
# resume with the same spec, lock and base URL does not ask the API again. Anything else that
# changed is a reason to ask.


def fingerprint(
    spec: Spec, base_url: str, lock: Lock | None, selection: Selection | None = None
) -> str:
    """What a pre-flight's answer depends on, as one sha256: with a `selection`, it checked only
    the inputs that selection selects, so a run selecting others (or all) must check again."""
    pins = sorted((model, pin.version or "") for model, pin in lock.pins.items()) if lock else []
    selected = selection.describe() if selection else ""
    text = json.dumps([RECORD_FORMAT, spec.sha256, base_url.rstrip("/"), pins, selected])
    return hashlib.sha256(text.encode()).hexdigest()


def recorded(run_dir: Path, prints: Collection[str], jobs: Collection[str]) -> set[str] | None:
    """The jobs a recorded pre-flight confirmed, if it was made for one of these fingerprints
    (this run's selection, or the whole plan, which covers any selection) and checked every one
    of `jobs`."""
    data = read_record(run_dir)
    if data is None or data.get("fingerprint") not in prints:
        return None
    checked = data.get("jobs")
    if not isinstance(checked, list) or not set(jobs) <= set(checked):
        return None
    if COUNTS_KEY not in data:  # an older batchrun's record: the budget needs the counts
        return None
    confirmed = data.get("confirmed")
    if not isinstance(confirmed, list):
        return set()
    return {job for job in confirmed if isinstance(job, str)}


def record(run_dir: Path, print_: str, jobs: Collection[str], result: PreflightResult) -> None:
    """Keep a passed pre-flight's answer (written whole, or not at all). What the models'
    schemas say of `num_outputs` adds to what an earlier record said of other models: `plan`
    counts images with it whichever jobs this run checked."""
    counts = recorded_counts(read_record(run_dir))
    counts.update(result.counts)
    write_record(
        run_dir,
        {
            "batchrun_preflight": RECORD_FORMAT,
            "fingerprint": print_,
            "jobs": sorted(jobs),
            "confirmed": sorted(result.confirmed),
            "notes": result.notes,
            COUNTS_KEY: counts_json(counts),
        },
    )
