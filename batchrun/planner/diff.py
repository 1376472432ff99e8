"""Two plans compared key by key: what an edit of a spec adds, changes and removes (`plan --diff`).

Keys hash what is predicted (target, input with files by content, repeat), so a prediction is
"added" when the new plan has a key the old one lacks and "removed" in the other direction;
an edit that changes only how things run (concurrency, rate, output) changes nothing here.

A removed and an added prediction of the same job with the same variables and repeat are one
prediction **changed**: the same row of the matrix now sends something else (Terraform's `~`).
Changed predictions are grouped by what changed, as the specs write it: appending ", highly
detailed" to a prompt template changes every row's prompt, and shows as one group whose
`fields` hold the template before and after, with each row's pair under it.

A base that does not plan (a spec broken at the revision, a file it names missing there) is
compared as an empty plan, and `base_problem` says why in one line.

Memory: the old plan's keys as integers (36 bytes each), then the added predictions and the new
plan's keys; the removed ones are found by walking the old plan a second time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchrun.errors import SpecError
from batchrun.planner.expand import FileInput, PlannedPrediction, iter_plan
from batchrun.planner.keys import canonical_json, jsonable
from batchrun.spec.jobs import Job
from batchrun.spec.load import Spec
from batchrun.spec.matrix import same

ADDED = "added"
REMOVED = "removed"
CHANGED = "changed"

# What the spec writes where it writes nothing: a field one side of a change lacks.
ABSENT: Any = None

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True)
class FieldChange:
    """One field a group of changes touched: `("target",)` or `("input", "prompt", ...)`, with
    what each spec writes there (the template, not a row's value); ABSENT where one has none."""

    path: FieldPath
    before: Any
    after: Any

    @property
    def rewritten(self) -> bool:
        """Whether the specs write this field differently (else a file it names changed)."""
        return not same(self.before, self.after)


@dataclass(frozen=True)
class Change:
    """One prediction changed: its key before and after, and the input fields that differ."""

    old: PlannedPrediction
    new: PlannedPrediction
    paths: tuple[FieldPath, ...]


@dataclass
class ChangeGroup:
    """Changed predictions of one job that changed alike: the same fields, written alike."""

    fields: tuple[FieldChange, ...]
    changes: list[Change] = field(default_factory=list)


@dataclass
class JobDiff:
    """One job's share of the diff: counts, and the predictions added, changed and removed."""

    id: str
    added: list[PlannedPrediction] = field(default_factory=list)
    removed: list[PlannedPrediction] = field(default_factory=list)
    changed: list[ChangeGroup] = field(default_factory=list)
    unchanged: int = 0

    @property
    def changed_count(self) -> int:
        """Predictions of this job changed, all groups together."""
        return sum(len(group.changes) for group in self.changed)

    @property
    def to_create(self) -> int:
        """Keys a run of the new spec creates for this job: added and changed."""
        return len(self.added) + self.changed_count


@dataclass(frozen=True)
class PlanDiff:
    """The new plan against the old one, by job in the order the specs list them."""

    jobs: tuple[JobDiff, ...]
    # Why the old plan counts as empty although the old spec is there: one line.
    base_problem: str | None = None

    @property
    def added(self) -> int:
        """Predictions the new plan adds, all jobs together."""
        return sum(len(job.added) for job in self.jobs)

    @property
    def removed(self) -> int:
        """Predictions the new plan no longer has, all jobs together."""
        return sum(len(job.removed) for job in self.jobs)

    @property
    def changed(self) -> int:
        """Predictions whose row stays but sends something else, all jobs together."""
        return sum(job.changed_count for job in self.jobs)

    @property
    def unchanged(self) -> int:
        """Predictions both plans share."""
        return sum(job.unchanged for job in self.jobs)


def diff_plans(old: Spec | None, new: Spec) -> PlanDiff:
    """What `new` plans that `old` did not, and the reverse; `old` None plans nothing.

    An old spec whose plan cannot be walked counts as empty, with `base_problem` saying why.
    """
    problem = None
    old_keys: set[int] = set()
    if old is not None:
        try:
            old_keys = {int(p.key, 16) for p in iter_plan(old)}
        except SpecError as error:
            old, old_keys, problem = None, set(), error.one_line()
    jobs: dict[str, JobDiff] = {job.id: JobDiff(job.id) for job in new.jobs}
    new_keys: set[int] = set()
    for planned in iter_plan(new):
        number = int(planned.key, 16)
        new_keys.add(number)
        if number in old_keys:
            jobs[planned.job].unchanged += 1
        else:
            jobs[planned.job].added.append(planned)
    if old is not None:
        for planned in iter_plan(old):
            if int(planned.key, 16) not in new_keys:
                jobs.setdefault(planned.job, JobDiff(planned.job)).removed.append(planned)
        old_jobs = {job.id: job for job in old.jobs}
        new_jobs = {job.id: job for job in new.jobs}
        for job in jobs.values():
            if job.id in old_jobs and job.id in new_jobs:
                _pair(job, old_jobs[job.id], new_jobs[job.id])
    return PlanDiff(tuple(jobs.values()), problem)


def _row(planned: PlannedPrediction) -> str:
    """What identifies a prediction's row within its job: its variables and its repeat."""
    return canonical_json({"vars": planned.vars, "repeat": planned.repeat})


def _pair(diff: JobDiff, old_job: Job, new_job: Job) -> None:
    """Move each removed prediction with an added one of the same row into a change group."""
    if not diff.added or not diff.removed:
        return
    removed = {_row(planned): planned for planned in diff.removed}
    paired: set[str] = set()
    groups: dict[str, ChangeGroup] = {}
    added = []
    for planned in diff.added:
        row = _row(planned)
        before = removed.get(row)
        if before is None or row in paired:
            added.append(planned)
            continue
        paired.add(row)
        paths = tuple(differing_fields(before.input, planned.input, ("input",)))
        if not same(before.target.to_json(), planned.target.to_json()):
            paths = (("target",), *paths)
        fields = tuple(_field(path, old_job, new_job) for path in paths)
        signature = canonical_json([[list(f.path), f.before, f.after] for f in fields])
        group = groups.setdefault(signature, ChangeGroup(fields))
        group.changes.append(Change(before, planned, paths))
    diff.added = added
    diff.removed = [planned for planned in diff.removed if _row(planned) not in paired]
    diff.changed = list(groups.values())


def differing_fields(before: Any, after: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """The paths of the fields that differ, a mapping's fields one by one, anything else whole."""
    if isinstance(before, dict) and isinstance(after, dict):
        for name in dict.fromkeys([*before, *after]):
            if name not in before or name not in after:
                yield (*path, name)
            else:
                yield from differing_fields(before[name], after[name], (*path, name))
    elif isinstance(before, FileInput) or isinstance(after, FileInput):
        if not same(jsonable(before), jsonable(after)):
            yield path
    elif not same(before, after):
        yield path


def _field(path: FieldPath, old_job: Job, new_job: Job) -> FieldChange:
    if path == ("target",):
        return FieldChange(path, str(old_job.target), str(new_job.target))
    return FieldChange(path, _written(old_job.input, path[1:]), _written(new_job.input, path[1:]))


def value_at(value: Any, path: FieldPath) -> Any:
    """What `value` holds at `path` (ABSENT where it holds nothing), FileInputs as JSON."""
    for part in path:
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        else:
            return ABSENT
    return jsonable(value)


def _written(input: Mapping[str, Any], path: FieldPath) -> Any:
    """What a spec writes for an input field: the template there, or the template that makes
    the structure around it (`prompt: ${row}` writes all of `prompt`); ABSENT if nothing."""
    value: Any = input
    for part in path:
        if not isinstance(value, Mapping):
            break
        if part not in value:
            return ABSENT
        value = value[part]
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
