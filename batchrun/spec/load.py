"""Loading a spec: YAML → schema → meaning checks → frozen records.

    spec = load_spec("specs/sweep.yaml")    # SpecError with every issue, sorted, if it is wrong

Each stage reports everything it finds, and a value one stage refused is not complained about
again by the next (see `batchrun.spec.checker`). What comes out is plain frozen records; nothing
after this module sees the YAML.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from batchrun import safefs
from batchrun.errors import SpecError, SpecIssue
from batchrun.humanize import shown_path
from batchrun.spec.allow import Allowances
from batchrun.spec.checker import Checker
from batchrun.spec.describe import TOKEN_MESSAGE, TOKEN_PATTERN, did_you_mean, join_names
from batchrun.spec.jobs import RESERVED, Job, build_job
from batchrun.spec.money import JobMoney, check_budget, duration, job_money, price_at, price_list
from batchrun.spec.rate import DEFAULT_RATE, DEFAULT_REQUESTS, Rate
from batchrun.spec.schema import check_structure
from batchrun.spec.template import Template, TemplateError
from batchrun.spec.yamlpos import KeyPath, Places, YamlDocument, format_path, parse_yaml

__all__ = ["Job", "Spec", "load_spec"]

DEFAULT_CONCURRENCY = 32
DEFAULT_WAIT = 60
DEFAULT_FILES = "${job}/${key}-${index}${ext}"
DEFAULT_TOKEN_ENV = "REPLICATE_API_TOKEN"
# Filled in when a file is downloaded, so always known to the files template.
FILES_BUILTINS = RESERVED

# Bytes of a spec file: a sweep written out inline is a few MB; more is data that belongs in a
# {csv:} or {jsonl:} file, and YAML that size takes minutes to parse.
MAX_SPEC_BYTES = 16 << 20


class Spec(NamedTuple):
    """A validated spec file; `jobs` in the order the file lists them."""

    path: Path
    name: str
    sha256: str
    concurrency: int = DEFAULT_CONCURRENCY
    rate: Rate = Rate.parse(DEFAULT_RATE)
    requests: Rate = Rate.parse(DEFAULT_REQUESTS)
    wait: int = DEFAULT_WAIT
    output: Path = Path("runs")
    files: str = DEFAULT_FILES
    base_url: str | None = None
    token_env: str = DEFAULT_TOKEN_ENV
    license: str | None = None  # the data's license, for an exported dataset's card
    jobs: tuple[Job, ...] = ()
    display_path: str = ""  # the spec's path as messages show it
    places: Places | None = None  # where its values sit, for errors found while planning
    allow: Allowances = Allowances()  # what the command line allowed
    budget: float | None = None  # USD this run folder may spend, all runs together
    outside: tuple[Path, ...] = ()  # paths outside its folder it reads or writes (allowed)

    @property
    def folder(self) -> Path:
        """The spec's folder: what the paths it names are relative to."""
        return self.path.parent

    def job(self, job_id: str) -> Job:
        """The job with this id; KeyError if there is none."""
        for job in self.jobs:
            if job.id == job_id:
                return job
        raise KeyError(job_id)

    def files_of(self, job: Job) -> str:
        """The `files` template that names a job's files: its own, else the spec's."""
        return job.files if job.files is not None else self.files

    def files_path(self, job: Job) -> KeyPath:
        """Where that template is written: the job's `files`, or the top-level one."""
        return (*job.path, "files") if job.files is not None else ("files",)

    def issue(self, path: KeyPath, message: str) -> SpecIssue:
        """A SpecIssue placed at a value of this spec (for problems found after loading)."""
        if self.places is None:
            return SpecIssue(self.display_path or str(self.path), 1, 1, format_path(path), message)
        return self.places.issue(path, message)


def load_spec(path: str | os.PathLike[str], allow: Allowances | None = None) -> Spec:
    """Read, validate and freeze a spec; SpecError with every issue, sorted, if it is wrong.

    `allow`: what the command line allows beyond the spec's folder (docs/SECURITY.md).
    """
    shown = shown_path(path)
    absolute = Path(os.path.abspath(path))
    real = Path(os.path.realpath(absolute))
    if not safefs.is_inside(absolute, absolute.parent) and not (allow and allow.permits(absolute)):
        # `validate specs/*.yaml` in CI: a spec committed as a link to ~/.netrc must not be
        # read, or its lines come back quoted in the errors (docs/SECURITY.md).
        message = (
            f"this spec is a link to {real}, outside its folder; batchrun reads it only when"
            f" the command line allows it: --allow-outside {real}"
        )
        raise SpecError([SpecIssue(shown, 1, 1, "", message)])
    try:
        data = safefs.read_regular(absolute, MAX_SPEC_BYTES, follow=True)
    except OSError as error:
        reason = error.strerror or str(error)
        raise SpecError([SpecIssue(shown, 1, 1, "", f"cannot read this file: {reason}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        col = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise SpecError([SpecIssue(shown, line, col, "", "not valid UTF-8 text")]) from None
    doc = parse_yaml(text, shown)
    check = Checker(doc, absolute.parent, os.path.dirname(os.fspath(path)), allow)
    _tokens(check)
    for blocked, issue in check_structure(doc):
        if not check.is_blocked(blocked):
            check.issues.append(issue)
        check.block([blocked])
    top = doc.value if isinstance(doc.value, dict) else {}
    places = doc.places()
    jobs_value = top.get("jobs")
    jobs_written: list[Any] = jobs_value if isinstance(jobs_value, list) else []
    jobs = [build_job(check, job, i) for i, job in enumerate(jobs_written)]
    jobs = _with_money(check, top, jobs, jobs_written)
    built = tuple(job for job in jobs if job is not None)
    _job_ids(check, jobs, jobs_written)
    # Each template is checked against the jobs whose files it names.
    _files_template(check, ("files",), top.get("files"), [j for j in built if j.files is None])
    for job in built:
        _files_template(check, (*job.path, "files"), job.files, [job])
    rates = {name: _rate(check, top, name, default) for name, default in _RATES.items()}
    output = top.get("output")
    if isinstance(output, str) and output:
        output = check.reach(("output",), output, "writes into")
    if check.issues:
        raise SpecError(check.issues)
    name = top.get("name") or absolute.stem
    return Spec(
        path=absolute,
        name=name,
        sha256=hashlib.sha256(data).hexdigest(),
        concurrency=top.get("concurrency", DEFAULT_CONCURRENCY),
        rate=rates["rate"],
        requests=rates["requests"],
        wait=top.get("wait", DEFAULT_WAIT),
        output=output or absolute.parent / "runs" / name,
        files=top.get("files", DEFAULT_FILES),
        base_url=top.get("base_url"),
        token_env=top.get("token_env", DEFAULT_TOKEN_ENV),
        license=top.get("license"),
        jobs=built,
        display_path=shown,
        places=places,
        allow=check.allow,
        outside=tuple(dict.fromkeys(check.outside)),
        budget=_budget(top),
    )


def _budget(top: Mapping[str, Any]) -> float | None:
    written = top.get("budget")
    return float(written) if isinstance(written, int | float) else None


def _with_money(
    check: Checker, top: Mapping[str, Any], jobs: list[Job | None], written: list[Any]
) -> list[Job | None]:
    """Each job with its price and timeout; a budget's checks (batchrun.spec.money)."""
    spec_wide = JobMoney(
        price_at(check, top.get("price"), ("price",)),
        "price" if "price" in top else "",
        duration(check, top, ("timeout",)),
    )
    prices = price_list(check, top.get("prices"))
    priced: list[Job | None] = []
    for job in jobs:
        if job is None:
            priced.append(None)
            continue
        value = written[job.position]
        money = job_money(check, value, job.path, job.target.model or None, spec_wide, prices)
        if "budget" in top and not check.is_blocked(("budget",)):
            check_budget(check, job.id, value, job.path, money)
        priced.append(
            job._replace(price=money.price, price_source=money.source, timeout=money.timeout)
        )
    return priced


_RATES = {"rate": DEFAULT_RATE, "requests": DEFAULT_REQUESTS}


def _rate(check: Checker, top: Mapping[str, Any], name: str, default: str) -> Rate:
    written = top.get(name, default)
    try:
        return Rate.parse(written)
    except ValueError as error:
        check.add((name,), str(error))
        return Rate.parse(default)


def _tokens(check: Checker) -> None:
    """A token pasted anywhere (comments too) is refused, and never echoed."""
    doc: YamlDocument = check.doc
    for match in TOKEN_PATTERN.finditer(doc.text):
        line, col = doc.position(match.start())
        where = doc.string_at(match.start())
        path = format_path(where) if where else ""
        check.issues.append(SpecIssue(doc.file, line, col, path, TOKEN_MESSAGE))
        if where is not None:
            check.block([where])


def _job_ids(check: Checker, jobs: list[Job | None], written: list[Any]) -> None:
    first: dict[str, int] = {}
    for job in jobs:
        if job is None:
            continue
        if job.id not in first:
            first[job.id] = job.position
            continue
        other = first[job.id]
        explicit = isinstance(written[job.position], dict) and "id" in written[job.position]
        if explicit:
            message = f"duplicate job id '{job.id}' (jobs[{other}] has it too)"
            check.add(("jobs", job.position, "id"), message)
        else:
            message = (
                f"this job would be called '{job.id}', like jobs[{other}]; give one of them an id"
            )
            check.add(("jobs", job.position), message)


def _files_template(check: Checker, path: KeyPath, written: Any, jobs: list[Job]) -> None:
    if not isinstance(written, str):
        return
    try:
        template = Template.compile(written)
    except TemplateError as error:
        check.add_found(path, written[error.offset : error.offset + 12], error.message)
        return
    if written.startswith(("/", "\\", "~")) or re.match(r"[A-Za-z]:", written):
        check.add(path, "the files template must be relative to the run folder")
    if ".." in re.split(r"[/\\]", written):
        check.add(path, "the files template may not leave the run folder with '..'")
    if not jobs:  # every job names its files with a template of its own
        return
    every = set.intersection(*(set(job.variables) for job in jobs))
    for ref in template.refs:
        if ref.name in FILES_BUILTINS or ref.name in every:
            continue
        lacking = [job.id for job in jobs if ref.name not in job.variables]
        if lacking and len(lacking) < len(jobs):
            message = (
                f"${{{ref.name}}} is not a variable of job '{lacking[0]}';"
                " the top-level files template names the files of every job without files"
                " of its own (give that job its own files)"
            )
        else:
            choices = sorted(every | set(FILES_BUILTINS))
            guess = did_you_mean(ref.name, choices)
            hint = (
                f"did you mean ${{{guess}}}?"
                if guess
                else f"the variables are {join_names(choices)}"
            )
            message = f"unknown variable {ref.text}; {hint}"
        check.add_found(path, ref.text, message)
