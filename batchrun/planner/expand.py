"""The plan: every prediction a spec asks for, with its key, streamed in a stable order.

    for p in iter_plan(load_spec("specs/sweep.yaml")):
        p.key, p.job, p.target, p.input, p.vars, p.repeat

Keys are defined in `batchrun.planner.keys`: the same spec gives the same keys on every machine, and
settings that change how (not what) is predicted leave them alone.

Problems only a row can show (a variable some include rows lack, a templated file that is not
there, two rows that would make the same prediction, a row the `files` template cannot name or
names like another) are SpecErrors raised when found; `check_plan` walks the whole plan and
collects them instead, for `batchrun validate`. A row that repeats an earlier one is placed at
its line in the value file it came from, when it came from one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from batchrun.cost import IMAGE_COUNT_INPUTS
from batchrun.errors import BatchrunError, SpecError, SpecIssue, UsageError
from batchrun.humanize import shown_path
from batchrun.planner.keys import (
    KEY_HEAD,
    FileHasher,
    FileInput,
    canonical_json,
    jsonable,
    key_json,
    key_tail,
    prediction_key,
)
from batchrun.planner.keyset import KeySet
from batchrun.planner.naming import NAMING_BUILTINS, JobNamers, planning_renderer
from batchrun.spec.describe import join_names, show, show_row
from batchrun.spec.jobs import Job
from batchrun.spec.load import Spec
from batchrun.spec.matrix import same
from batchrun.spec.sources import FileSource
from batchrun.spec.structure import compile_value
from batchrun.spec.target import Target
from batchrun.spec.template import KeyPath, MissingVariable, RenderError
from batchrun.spec.yamlpos import format_path

__all__ = [
    "FileInput",
    "PlanCheck",
    "PlannedPrediction",
    "Shard",
    "canonical_json",
    "check_plan",
    "in_shard",
    "iter_plan",
    "parse_shard",
    "prediction_key",
]


class PlannedPrediction(NamedTuple):
    """One prediction of the plan. `input` and `vars` are shared with other rows: read-only."""

    key: str
    job: str
    target: Target
    input: dict[str, Any]
    vars: dict[str, Any]
    repeat: int

    def to_json(self) -> dict[str, Any]:
        """The object `plan --json` prints for this prediction."""
        return {
            "key": self.key,
            "job": self.job,
            "target": self.target.to_json(),
            "vars": self.vars,
            "input": jsonable(self.input),
            "repeat": self.repeat,
        }


def _planned(
    key: str, job: str, target: Target, input: Any, vars: Any, repeat: int
) -> PlannedPrediction:
    """What PlannedPrediction(...) does, at half the cost of its generated `__new__` (which
    takes keywords and defaults); the plan makes millions of them."""
    return tuple.__new__(PlannedPrediction, (key, job, target, input, vars, repeat))


class Shard(NamedTuple):
    """Shard `number` (1-based) of `total`: the keys with int(key, 16) % total == number - 1.

    A plain (number, total) tuple works wherever a Shard is expected.
    """

    number: int
    total: int

    def __str__(self) -> str:
        return f"{self.number}/{self.total}"


def parse_shard(text: str) -> Shard:
    """`I/N` as `--shard` takes it; UsageError if it is not 1 <= I <= N."""
    index_text, slash, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index = count = 0
    if not slash or not 1 <= index <= count:
        raise UsageError(f"--shard expects I/N with 1 <= I <= N, like 2/8; got {text!r}")
    return Shard(index, count)


def in_shard(key: str, shard: tuple[int, int] | None) -> bool:
    """Whether a key belongs to shard (index, count); with no shard, every key does."""
    if shard is None:
        return True
    index, count = shard
    return int(key, 16) % count == index - 1


Report = Callable[[SpecIssue, tuple[Any, ...]], None]


def _raise(issue: SpecIssue, kind: tuple[Any, ...]) -> None:
    raise SpecError([issue])


def iter_plan(
    spec: Spec, *, jobs: Collection[str] | None = None, shard: tuple[int, int] | None = None
) -> Iterator[PlannedPrediction]:
    """Every planned prediction, jobs in spec order; SpecError at a row that cannot be planned."""
    return _plan(spec, _chosen(spec, jobs), Shard(*shard) if shard else None, _raise)


def _chosen(spec: Spec, jobs: Collection[str] | None) -> list[Job]:
    if jobs is None:
        return list(spec.jobs)
    known = [job.id for job in spec.jobs]
    unknown = [name for name in jobs if name not in known]
    if unknown:
        raise UsageError(f"no job named '{unknown[0]}'; the jobs are {join_names(known)}")
    return [job for job in spec.jobs if job.id in jobs]


class PlanCheck(NamedTuple):
    """What walking the whole plan found: predictions per job, and the rows that fail."""

    counts: dict[str, int]
    issues: tuple[SpecIssue, ...]

    @property
    def total(self) -> int:
        """Predictions in the plan."""
        return sum(self.counts.values())


# Kinds of problem each row has on its own (a repeated row, two rows naming one file): all of
# them are worth fixing in one pass, up to a number a terminal can still show.
MANY_KINDS = frozenset({"duplicate", "collision"})
MANY_SHOWN = 200
# Input fields by which a model is asked for several outputs per prediction: those the price
# rule counts images by (one list, in batchrun.cost).
MULTI_OUTPUT_FIELDS = IMAGE_COUNT_INPUTS


def check_plan(spec: Spec, *, per_kind: int = 1) -> PlanCheck:
    """Walk the whole plan (streaming) and collect every row problem: `per_kind` of each sort,
    and every repeated row and file name clash (up to MANY_SHOWN of each)."""
    issues: list[SpecIssue] = []
    seen: dict[tuple[Any, ...], int] = {}

    def collect(issue: SpecIssue, kind: tuple[Any, ...]) -> None:
        seen[kind] = seen.get(kind, 0) + 1
        if seen[kind] <= (MANY_SHOWN if kind[0] in MANY_KINDS else per_kind):
            issues.append(issue)

    counts = dict.fromkeys((job.id for job in spec.jobs), 0)
    for planned in _plan(spec, list(spec.jobs), None, collect):
        counts[planned.job] += 1
    return PlanCheck(counts, tuple(sorted(set(issues))))


def _plan(
    spec: Spec, jobs: list[Job], shard: Shard | None, report: Report
) -> Iterator[PlannedPrediction]:
    files = FileHasher(spec.folder, spec.allow)
    # Keys seen so far, as the integers their 16 hex digits spell, 8 bytes each in one table
    # (planner/keyset.py: a million keys in 11 to 21 MB; a set of ints took about 80).
    seen = KeySet()
    naming = _Naming(spec, report)
    for done, job in enumerate(jobs):
        duplicates: list[tuple[dict[str, Any], int | None, str]] = []
        yield from _job_plan(spec, job, files, seen, shard, report, naming, duplicates)
        naming.report_clashes(jobs[: done + 1])
        if duplicates:
            # Placing a repeated row needs the row it repeats: one more walk, only on error.
            for issue, kind in _duplicates(spec, job, duplicates):
                report(issue, kind)


def _job_plan(
    spec: Spec,
    job: Job,
    files: FileHasher,
    seen: KeySet,
    shard: Shard | None,
    report: Report,
    naming: _Naming | None = None,
    duplicates: list[tuple[dict[str, Any], int | None, str]] | None = None,
    rows: Iterable[tuple[dict[str, Any], int | None]] | None = None,
) -> Iterator[PlannedPrediction]:
    """The predictions of one job; `rows`: only these of its matrix rows (`plan_at`)."""
    try:
        compiled = compile_value(dict(job.input), wraps={"file": files.make}, encode=key_json)
    except RenderError as error:  # a file named without a template: found once, here
        report(spec.issue((*job.path, "input", *error.where), error.message), ("file", job.id))
        return
    render = compiled.render_encoded
    assert render is not None
    per_repeat = "repeat" in compiled.variables
    with_job = "job" in compiled.variables
    target, job_id = job.target, job.id
    target_json = key_json(target.to_json())
    tails = [key_tail(r, target_json) for r in range(job.repeat)]
    name = naming.for_job(job) if naming is not None else None
    count = failed = 0
    for row, origin in job.matrix.rows() if rows is None else rows:
        context = {**row, "job": job_id} if with_job else row
        for repeat, tail in enumerate(tails):
            if per_repeat or repeat == 0:
                try:
                    input, text = render({**context, "repeat": repeat} if per_repeat else context)
                    head = KEY_HEAD + text
                except RenderError as error:
                    failed += 1
                    report(*_row_issue(spec, job, row, origin, error))
                    break
            digest = hashlib.sha256((head + tail).encode()).digest()[:8]
            key, number = digest.hex(), int.from_bytes(digest)
            if not seen.add(number):
                failed += 1
                if duplicates is None:
                    continue
                duplicates.append((row, origin, key))
                continue
            count += 1
            if name is not None and not name(key, number, input, row, origin, repeat):
                failed += 1
            if shard is None or number % shard.total == shard.number - 1:
                yield _planned(key, job_id, target, input, row, repeat)
    if count == 0 and not failed:
        message = "the matrix expands to no predictions"
        report(spec.issue(job.path, message), ("empty", job.id))


def plan_at(
    spec: Spec, places: Mapping[str, Sequence[int]]
) -> Iterator[tuple[int, PlannedPrediction]]:
    """(place, prediction) at these places of each job's plan (0-based, increasing), jobs in
    spec order: what a walk of the whole plan makes there, rendering only their rows.

    Only for a plan a whole walk made without an error, where each row makes `repeat`
    predictions (the plan cache's, planner/plancache.py): the caller checks each key against
    the one it expects there."""
    files = FileHasher(spec.folder, spec.allow)
    for job in spec.jobs:
        wanted = places.get(job.id)
        if not wanted:
            continue
        per_row = job.repeat
        chosen = sorted({place // per_row for place in wanted})
        taken = set(chosen)
        picked = (row for index, row in enumerate(job.matrix.rows()) if index in taken)
        keep = set(wanted)
        made = _job_plan(spec, job, files, KeySet(), None, _raise, rows=picked)
        for count, planned in enumerate(made):
            place = chosen[count // per_row] * per_row + count % per_row
            if place in keep:
                yield place, planned


def _row_place(job: Job, origin: int | None) -> KeyPath:
    if origin is not None:
        return (*job.path, "include", origin)
    return (*job.path, "matrix") if job.matrix.axes else job.path


def _row_issue(
    spec: Spec, job: Job, row: Mapping[str, Any], origin: int | None, error: RenderError
) -> tuple[SpecIssue, tuple[Any, ...]]:
    template_path = (*job.path, "input", *error.where)
    kind = (type(error).__name__, job.id, origin, error.where)
    if isinstance(error, MissingVariable):
        message = (
            f"this row ({show_row(row)}) has no variable '{error.ref.name}',"
            f" which {format_path(template_path)} uses"
        )
        return spec.issue(_row_place(job, origin), message), kind
    return spec.issue(template_path, f"{error.message}, in the row {show_row(row)}"), kind


def _duplicates(
    spec: Spec, job: Job, found: list[tuple[dict[str, Any], int | None, str]]
) -> Iterator[tuple[SpecIssue, tuple[Any, ...]]]:
    """Each repeated row, placed at its line in the value file it came from when it did."""
    wanted = {key for _, _, key in found}
    first: dict[str, dict[str, Any]] = {}
    hasher = FileHasher(spec.folder, spec.allow)
    for planned in _job_plan(spec, job, hasher, KeySet(), None, _ignore):
        if planned.key in wanted and planned.key not in first:
            first[planned.key] = planned.vars
            if len(first) == len(wanted):
                break
    lines: dict[str, list[tuple[int, Any]]] = {}
    used: dict[tuple[str, str], int] = {}
    for row, origin, key in found:
        earlier = first.get(key, {})
        message = (
            f"this row ({show_row(row)}) makes the same prediction as an earlier row"
            f" ({show_row(earlier)}, key {key}); rows must differ in what they send"
            " (repeat: runs one input several times)"
        )
        kind = ("duplicate", job.id, origin)
        placed = None if origin is not None else _in_value_file(job, row, earlier, lines, used)
        if placed is None:
            yield spec.issue(_row_place(job, origin), message), kind
            continue
        file, line, axis, first_line = placed
        where = f"the row at line {first_line}" if first_line else "an earlier row"
        message = (
            f"this row ({show_row(row)}) makes the same prediction as {where} (key {key});"
            " rows must differ in what they send (repeat: runs one input several times)"
        )
        path = format_path((*job.path, "matrix", axis))
        yield SpecIssue(file, line, 1, path, message), kind


def _ignore(issue: SpecIssue, kind: tuple[Any, ...]) -> None:
    pass


def _in_value_file(
    job: Job,
    row: Mapping[str, Any],
    earlier: Mapping[str, Any],
    lines: dict[str, list[tuple[int, Any]]],
    used: dict[tuple[str, str], int],
) -> tuple[str, int, str, int | None] | None:
    """(file, line, axis, line of the earlier row) for a repeated row from a value file."""
    axes = [(name, source) for name, source in job.matrix.axes if isinstance(source, FileSource)]
    differing = [
        (name, source)
        for name, source in axes
        if name in earlier and name in row and not same(row[name], earlier[name])
    ]
    for name, source in differing or axes:
        if name not in lines:
            lines[name] = list(source.numbered())
        value = row[name]
        matches = [line for line, item in lines[name] if same(item, value)]
        if not matches:
            continue
        if differing:
            before = [line for line, item in lines[name] if same(item, earlier[name])]
            return shown_path(source.path), matches[0], name, before[0] if before else None
        # The same value twice in one file: the first is the row repeated, later ones repeat it.
        seen_key = (name, canonical_json(value))
        used[seen_key] = used.get(seen_key, 0) + 1
        nth = min(used[seen_key], len(matches) - 1)
        return shown_path(source.path), matches[nth], name, matches[0]
    return None


class _Naming:
    """The `files` template filled for every planned prediction, before anything is sent.

    Cheap when it can be: a template of batchrun's own variables that names the key (the
    default) cannot fail or clash, and costs nothing per row. A template without `${key}` is
    checked for clashes by the hash of each path (a million paths in about 100 MB); the rows
    behind a clash are found again only when there is one.
    """

    def __init__(self, spec: Spec, report: Report) -> None:
        self.spec = spec
        self.report = report
        self.namers = JobNamers.of_spec(spec)
        # hash(path) → the number of the key that took it (templates without ${key} only).
        self.paths: dict[int, int] = {}
        # (job, row, key, number of the key it clashed with, path), placed at the job's end.
        self.clashes: list[tuple[Job, Mapping[str, Any], str, int, str]] = []

    def for_job(self, job: Job) -> Callable[..., bool] | None:
        """A per-row check for this job; None when there is nothing to check."""
        namer = self.namers(job.id)
        variables = namer.variables
        render_rows = not variables <= NAMING_BUILTINS
        unique = "key" in variables
        names_several = bool(variables & {"index", "output"})
        multi = [name for name in MULTI_OUTPUT_FIELDS if name in job.input]
        if not (render_rows or not unique or (multi and not names_several)):
            return None
        several = () if names_several else tuple(multi)
        job_id, spec, report, paths = job.id, self.spec, self.report, self.paths
        render = planning_renderer(namer, job_id)
        clashes = None if unique else self.clashes
        files = spec.files_path(job)

        def check(
            key: str,
            number: int,
            input: Mapping[str, Any],
            row: Mapping[str, Any],
            origin: Any,
            repeat: int,
        ) -> bool:
            for asking in several:
                asked = input.get(asking)
                if isinstance(asked, int) and not isinstance(asked, bool) and asked > 1:
                    message = (
                        f"job '{job_id}' asks for {asked} outputs per prediction"
                        f" ({asking}: {asked}), but the files template has no ${{index}} or"
                        " ${output} to tell them apart"
                    )
                    report(spec.issue(files, message), ("several", job_id))
                    return False
            try:
                path = render(key, repeat, row)
            except RenderError as error:
                message = f"{error.message}, in the row {show_row(row)} of job '{job_id}'"
                kind = ("files", job_id, origin, getattr(error, "ref", error.message))
                report(spec.issue(files, message), kind)
                return False
            except BatchrunError as error:
                message = f"{error}, for the row {show_row(row)} of job '{job_id}'"
                report(spec.issue(files, message), ("files", job_id, origin))
                return False
            if clashes is not None:
                owner = paths.setdefault(hash(path), number)
                if owner != number:
                    clashes.append((job, row, key, owner, path))
                    return False
            return True

        return check

    def report_clashes(self, jobs: list[Job]) -> None:
        """Report the clashes found so far, each naming both rows."""
        if not self.clashes:
            return
        wanted = {owner for _, _, _, owner, _ in self.clashes}
        rows: dict[int, Mapping[str, Any]] = {}
        hasher = FileHasher(self.spec.folder)
        for job in jobs:
            for planned in _job_plan(self.spec, job, hasher, KeySet(), None, _ignore):
                number = int(planned.key, 16)
                if number in wanted:
                    rows.setdefault(number, planned.vars)
        for job, row, key, owner, path in self.clashes:
            other = rows.get(owner, {})
            message = (
                f"this template names the files of the row {show_row(row)} and of"
                f" the row {show_row(other)} alike ({show(path)}, keys {owner:016x}"
                f" and {key}); add ${{key}} or a variable that tells them apart"
            )
            where = self.spec.files_path(job)
            self.report(self.spec.issue(where, message), ("collision", job.id, path))
        self.clashes.clear()
