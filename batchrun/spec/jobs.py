"""One job of a spec: its meaning checks, and the frozen `Job` record they produce.

The schema has already said what is malformed; here are the checks that need to understand the
job: exactly one well-formed target, value sources that exist and parse, exclude keys that are
axes, templates that parse and name known variables, axes the input actually uses, local files
that exist, and a matrix that expands to something.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from batchrun.cost import Price
from batchrun.spec.checker import Checker
from batchrun.spec.describe import did_you_mean, join_names, show
from batchrun.spec.matrix import Matrix
from batchrun.spec.sources import (
    CsvSource,
    FileSource,
    GlobSource,
    JsonlSource,
    JsonSource,
    LinesSource,
    ListSource,
    RangeSource,
    ValueSource,
)
from batchrun.spec.structure import Compiled, compile_value
from batchrun.spec.target import Target
from batchrun.spec.template import Template, TemplateError
from batchrun.spec.yamlpos import KeyPath, walk_strings

TARGET_FIELDS = ("model", "version", "deployment")
# Filled in by batchrun itself: in an input, only repeat and job are known.
RESERVED = ("repeat", "job", "key", "index", "ext", "output")
INPUT_BUILTINS = ("repeat", "job")
_FILE_SOURCES: dict[str, type[FileSource]] = {
    "lines": LinesSource,
    "csv": CsvSource,
    "jsonl": JsonlSource,
    "json": JsonSource,
}


class Job(NamedTuple):
    """A validated job: what to run, with which inputs, how many times.

    `input` is the input as written (templates unrendered) and, like the matrix's values, is
    shared, so it must be treated as read-only.
    """

    id: str
    target: Target
    concurrency: int | None = None
    repeat: int = 1
    input: Mapping[str, Any] = MappingProxyType({})
    matrix: Matrix = Matrix()
    position: int = 0  # its index in the spec's `jobs` (not `index`: a tuple's method)
    files: str | None = None  # its own `files` template; None: the spec's
    # What a prediction costs (batchrun.cost), where that price was written, and the seconds
    # after which a running prediction is canceled: see batchrun.spec.money.
    price: Price | None = None
    price_source: str = ""
    timeout: float | None = None

    @property
    def path(self) -> KeyPath:
        """Where the job sits in its spec: ("jobs", index)."""
        return ("jobs", self.position)

    @property
    def variables(self) -> frozenset[str]:
        """Every variable a row of this job may have: its axes and its include keys."""
        return frozenset(self.matrix.names) | {k for e in self.matrix.include for k in e}


def derived_id(target: Target) -> str:
    """The id a job gets when it names none: the model or deployment name, or v-VERSION[:8]."""
    return target.name if target.name else f"v-{target.version[:8]}"


def build_job(check: Checker, value: Any, index: int) -> Job | None:
    """The Job for `jobs[index]`, adding every issue found to `check`; None if it has none."""
    path: KeyPath = ("jobs", index)
    if not isinstance(value, dict):
        return None
    target = _target(check, value, path)
    matrix, counts = _matrix(check, value, path)
    input_value = value.get("input")
    if isinstance(input_value, dict) and not check.is_blocked((*path, "input")):
        compiled = _templates(check, input_value, (*path, "input"), _known(check, value, path))
        if compiled is not None:
            _unused_axes(check, matrix, counts, compiled, path)
        _literal_files(check, input_value, (*path, "input"))
    else:
        input_value = {}
    if len(counts) == len(matrix.axes) and all(counts.values()):
        _bounded(check, matrix, counts, _int(value.get("repeat"), 1) or 1, path)
        _not_empty(check, matrix, counts, path)
    if target is None:
        return None
    written_id = value.get("id")
    return Job(
        id=written_id if isinstance(written_id, str) else derived_id(target),
        target=target,
        concurrency=_int(value.get("concurrency"), None),
        repeat=_int(value.get("repeat"), 1) or 1,
        input=MappingProxyType(input_value),
        matrix=matrix,
        position=index,
        files=value["files"] if isinstance(value.get("files"), str) else None,
    )


def _known(check: Checker, job: dict[str, Any], path: KeyPath) -> set[str] | None:
    """The variables of a job's rows, or None when a refused matrix or include hides them."""
    matrix, include = job.get("matrix", {}), job.get("include", [])
    if not isinstance(matrix, dict) or not isinstance(include, list):
        return None
    if check.is_blocked((*path, "include")) or check.is_blocked((*path, "matrix")):
        return None
    return set(matrix) | {key for entry in include if isinstance(entry, dict) for key in entry}


def _int(value: Any, default: int | None) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return int(value) if value >= 1 else default


def _target(check: Checker, job: dict[str, Any], path: KeyPath) -> Target | None:
    named = [name for name in TARGET_FIELDS if name in job]
    if not named:
        check.add(path, "a job needs a target: model, version or deployment")
        return None
    if len(named) > 1:
        names = ", ".join(named[:-1]) + f" and {named[-1]}"
        message = f"a job has one target, but this one names {names}; keep one"
        check.add_at_key(path, (*path, named[1]), message)
        return None
    kind = named[0]
    try:
        return Target.parse(kind, job[kind])
    except ValueError as error:
        check.add((*path, kind), str(error))
        return None


def _matrix(check: Checker, job: dict[str, Any], path: KeyPath) -> tuple[Matrix, dict[str, int]]:
    """The job's Matrix, and the number of values of each axis that could be counted."""
    spec = job.get("matrix")
    axes: list[tuple[str, ValueSource]] = []
    counts: dict[str, int] = {}
    if isinstance(spec, dict):
        for name, written in spec.items():
            axis_path = (*path, "matrix", name)
            source = _source(check, written, axis_path)
            if source is None:
                continue
            axes.append((name, source))
            count = _count(check, source, written, axis_path)
            if count is not None:
                counts[name] = count
    names = list(spec) if isinstance(spec, dict) else []
    exclude = _entries(job.get("exclude"))
    for i, entry in enumerate(exclude):
        for key in entry:
            if key not in names:
                axes_text = (
                    f"the axes are {join_names(names)}" if names else "this job has no matrix"
                )
                message = f"'{key}' is not a matrix axis; {axes_text}"
                check.add((*path, "exclude", i, key), message, at_key=True)
    include = _entries(job.get("include"))
    usable = [e for e in exclude if all(k in names for k in e)]
    return Matrix(tuple(axes), tuple(usable), tuple(include)), counts


def _entries(value: Any) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        return []
    return [MappingProxyType(e) for e in value if isinstance(e, dict) and e]


def _source(check: Checker, written: Any, path: KeyPath) -> ValueSource | None:
    if isinstance(written, list):
        _duplicates(check, written, path)
        return ListSource(tuple(written))
    if not isinstance(written, dict) or len(written) != 1:
        return None
    ((kind, argument),) = written.items()
    if check.is_blocked(path) or check.is_blocked((*path, kind)):
        return None
    if kind == "range" and isinstance(argument, list) and 2 <= len(argument) <= 3:
        return _range(check, argument, (*path, kind))
    if kind == "glob" and isinstance(argument, str):
        # The folder the pattern starts from (before its first wildcard) must be reachable.
        fixed = re.split(r"[*?\[]", argument, maxsplit=1)[0]
        if check.reach((*path, kind), os.path.dirname(fixed) or ".") is None:
            return None
        return GlobSource(check.folder, argument)
    if kind in _FILE_SOURCES and isinstance(argument, str):
        file = check.reach((*path, kind), argument)
        if file is None:
            return None
        if not file.exists():
            check.add((*path, kind), f"file '{argument}' does not exist")
            return None
        if file.is_dir():
            check.add((*path, kind), f"'{argument}' is a folder, not a file")
            return None
        return _FILE_SOURCES[kind](file, argument)
    return None


def _range(check: Checker, numbers: list[Any], path: KeyPath) -> RangeSource | None:
    if not all(isinstance(n, int | float) and not isinstance(n, bool) for n in numbers):
        return None
    if len(numbers) == 3 and numbers[2] == 0:
        check.add((*path, 2), "the step of a range cannot be 0")
        return None
    return RangeSource(*numbers)


def _duplicates(check: Checker, values: list[Any], path: KeyPath) -> None:
    # Canonical JSON tells 1, 1.0, true and "1" apart exactly as keys do.
    first: dict[str, int] = {}
    for i, value in enumerate(values):
        text = json.dumps(value, sort_keys=True)
        if text in first:
            message = f"value #{i + 1} ({show(value)}) repeats value #{first[text] + 1}"
            check.add((*path, i), message)
        else:
            first[text] = i


def _count(check: Checker, source: ValueSource, written: Any, path: KeyPath) -> int | None:
    count, problems = source.scan()
    for problem in problems:
        check.add_file_error(path, problem)
    if problems:
        return None
    if count == 0:
        if isinstance(source, GlobSource):
            check.add(path, f"no files match '{source.pattern}'")
        elif isinstance(source, RangeSource):
            check.add(path, f"the range {show(written['range'])} has no values")
        elif isinstance(source, FileSource):
            check.add(path, f"'{source.written}' has no values")
        else:
            check.add(path, "this axis has no values")
    return count


def _templates(
    check: Checker, input_value: dict[str, Any], path: KeyPath, known: set[str] | None
) -> Compiled | None:
    """Compile the input's templates; report every bad one and, when known, unknown variables."""
    broken = False
    for where, text in walk_strings(input_value, path):
        try:
            template = Template.compile(text)
        except TemplateError as error:
            broken = True
            check.add_found(where, text[error.offset : error.offset + 12], error.message)
            continue
        for ref in template.refs:
            if known is not None and ref.name not in known and ref.name not in INPUT_BUILTINS:
                broken = True
                message = _unknown(ref.name, ref.text, ref.fields, known)
                check.add_found(where, ref.text, message)
    # After a typo (${subjct}) the axis it meant looks unused: say only what is wrong.
    return None if broken or known is None else compile_value(input_value)


def _unknown(name: str, text: str, fields: tuple[str, ...], known: set[str]) -> str:
    if name in RESERVED:
        return f"${{{name}}} is only known when naming downloaded files (files:), not in an input"
    what = text if not fields else f"'{name}' in {text}"
    guess = did_you_mean(name, sorted(known | set(INPUT_BUILTINS)))
    if guess:
        return f"unknown variable {what}; did you mean ${{{guess}}}?"
    if known:
        return f"unknown variable {what}; the variables are {join_names(sorted(known))}"
    return f"unknown variable {what}; this job has no matrix"


def _unused_axes(
    check: Checker, matrix: Matrix, counts: dict[str, int], compiled: Compiled, path: KeyPath
) -> None:
    used = compiled.variables
    for name in matrix.names:
        if name not in used and counts.get(name, 0) > 1:
            check.add(
                (*path, "matrix", name),
                f"the input does not use ${{{name}}}, so its {counts[name]} values would make"
                " identical predictions",
                at_key=True,
            )


def _literal_files(check: Checker, value: Any, path: KeyPath) -> None:
    """`{file: path}` entries without templates must name files that exist (the others are
    checked row by row while planning)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("file"), str) and "${" not in value["file"]:
            written = value["file"]
            file = check.reach((*path, "file"), written)
            if file is None:
                return
            if not file.exists():
                check.add((*path, "file"), f"file '{written}' does not exist")
            elif file.is_dir():
                check.add((*path, "file"), f"'{written}' is a folder, not a file")
            return
        for key, item in value.items():
            _literal_files(check, item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _literal_files(check, item, (*path, i))


def _bounded(
    check: Checker, matrix: Matrix, counts: dict[str, int], repeat: int, path: KeyPath
) -> None:
    """Refuse a job whose axes multiply past the cap, before anything walks its rows."""
    most = (math.prod(counts.values()) + len(matrix.include)) * repeat
    cap = check.allow.max_predictions
    if most > cap:
        check.add(
            path,
            f"the matrix expands to up to {most:,} predictions, more than the limit of {cap:,};"
            f" pass --max-predictions {most} to plan them all",
        )
        check.block([path])


def _not_empty(check: Checker, matrix: Matrix, counts: dict[str, int], path: KeyPath) -> None:
    if matrix.include or not matrix.exclude or not matrix.axes:
        return
    if next(matrix.rows(), None) is None:
        total = math.prod(counts.values())
        noun = "combination" if total == 1 else f"{total} combinations"
        what = f"the {noun}" if total == 1 else f"all {noun}"
        check.add(path, f"the matrix expands to no predictions (exclude removes {what})")
