"""The keys and jobs of a spec's plan kept in its run folder: counted without expanding the plan.

Walking the plan renders every input and hashes every key: about 1.2 CPU s per 100,000 keys.
`status` needs only each planned key and its job, in order. For a spec whose plan is a pure
function of its own bytes (every matrix axis a list or a range written in the spec, no local
file sent: `reads_nothing`), `status` writes, after a whole walk (as `report` and `export`
do), `PLAN_CACHE` beside the journals: per planned prediction in plan order its key (8 bytes)
and its job's place in the spec (2 bytes). A later reader takes the keys from it when its
digest is that of the spec as it is now (`plan_digest`: the spec file's sha256 and path,
batchrun's version and `PLAN_FORMAT`).
Another spec, an edit, another version, a file cut short or changed anywhere (its arrays'
sha256 is checked): the file is not used, and the plan is walked.

The file says which keys the spec plans, no more. What needs a few planned inputs (`plan`'s
examples, the estimate of the new predictions) renders again only their rows (`PlanKeys.rendered`,
each key checked against the one kept); the pre-flight and `run` walk the plan. `status` and
`plan` (manifest/compare.py) and the scope of `report` and `export` (manifest/scope.py) read
it; `status`, `report` and `export` write it after a whole walk (`kept_walk`), `plan` and `run`
never. It is plain data, never pickle:

    MAGIC, one JSON line (`version`, `byteorder`, `digest`, `jobs`, `count`, `sha256`), then
    `count` keys (unsigned 64-bit) and `count` job places (unsigned 16-bit), native byte order
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import operator
import os
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchrun import safefs
from batchrun._version import __version__
from batchrun.errors import StorageError
from batchrun.planner.expand import PlannedPrediction, plan_at
from batchrun.planner.sample import Selection, iter_selected
from batchrun.spec.load import Spec
from batchrun.spec.readers import sends_files
from batchrun.spec.sources import ListSource, RangeSource

PLAN_CACHE = ".batchrun-plan.bin"
MAGIC = b"batchrun-plan 1\n"
# What a plan's keys mean and how they are walked: a change to either changes this number.
PLAN_FORMAT = 1
# A job's place in the spec is kept in 16 bits: a spec with more jobs keeps no cache.
MOST_JOBS = 1 << 16
# The JSON line: a digest, a count and the jobs' ids.
MAX_META_BYTES = 1 << 20


def reads_nothing(spec: Spec) -> bool:
    """Whether the spec's plan depends on its own bytes alone: every matrix axis a list or a
    range written in it, and no job that sends a local file (`{file: ...}`, whose sha256 is in
    the key). A spec this cannot tell is taken as one that reads."""
    for job in spec.jobs:
        if any(type(source) not in (ListSource, RangeSource) for _, source in job.matrix.axes):
            return False
        if sends_files(job.input):
            return False
    return len(spec.jobs) <= MOST_JOBS


def plan_digest(spec: Spec) -> str:
    """What the plan of a spec that `reads_nothing` is a function of, hashed."""
    what = [PLAN_FORMAT, __version__, str(spec.path), spec.sha256]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


@dataclass(frozen=True)
class PlanKeys:
    """A plan's keys (as the numbers their 16 hex digits spell) and each one's job, in order."""

    jobs: tuple[str, ...]
    numbers: array[int]
    places: array[int]  # per key, its job's place in `jobs`

    def walk(self, selection: Selection) -> Iterator[tuple[str, str, int]]:
        """(key, job, place in the whole plan) of what `selection` keeps, in plan order, as
        `iter_selected` walks it. Not for a sample (its ranking reads each row's variables)."""
        if selection.sample is not None:
            raise ValueError("a sample is ranked by each row's variables: walk the plan")
        jobs, shard, left = self.jobs, selection.shard, selection.limit
        found: Iterable[tuple[int, tuple[int, int]]] = enumerate(
            zip(self.numbers, self.places, strict=True)
        )
        if shard is not None:
            total, wanted = shard.total, shard.number - 1
            found = ((at, pair) for at, pair in found if pair[0] % total == wanted)
        for at, (number, job) in found:
            if left is not None:
                if left <= 0:
                    return
                left -= 1
            yield f"{number:016x}", jobs[job], at

    def rendered(self, spec: Spec, wanted: Sequence[int]) -> list[PlannedPrediction] | None:
        """The predictions at these places of the plan (increasing), their inputs rendered
        again (`expand.plan_at`); None when one's key is not the one kept there."""
        # A job's place in `jobs` → where its keys start (each job's keys are together).
        first = {job: bisect.bisect_left(self.places, job) for job in range(len(self.jobs))}
        by_job: dict[str, list[int]] = {}
        for at in wanted:
            job = self.places[at]
            by_job.setdefault(self.jobs[job], []).append(at - first[job])
        made = []
        for (place, planned), at in zip(plan_at(spec, by_job), wanted, strict=False):
            if first[self.places[at]] + place != at or int(planned.key, 16) != self.numbers[at]:
                return None
            made.append(planned)
        return made if len(made) == len(wanted) else None


def planned_keys(
    spec: Spec,
    run_dir: Path | None,
    selection: Selection | None = None,
    *,
    sampled: frozenset[str] | None = None,
) -> Iterator[tuple[str, str]]:
    """(key, job) of what `selection` keeps of the spec's plan (by default all of it), in plan
    order: from `run_dir`'s cache when it is this spec's and no sample ranks the rows, else by
    a walk of the plan (`iter_selected`; SpecError where a row cannot be planned)."""
    selection = selection or Selection()
    ranked = selection.sample is not None or sampled is not None
    cached = read(run_dir, spec) if run_dir is not None and not ranked else None
    if cached is not None:
        return ((key, job) for key, job, _ in cached.walk(selection))
    return ((p.key, p.job) for p in iter_selected(spec, selection, sampled=sampled))


def planned_numbers(
    spec: Spec, run_dir: Path | None, *, keep: bool = False
) -> Iterator[tuple[int, str]]:
    """`planned_keys` of the whole plan, each key as the number its 16 hex digits spell
    (planner/keys.py): a million keys are looked up in a table without a string each.
    `keep`: a walk of the plan writes `run_dir`'s cache (`kept_walk`)."""
    cached = read(run_dir, spec) if run_dir is not None else None
    if cached is not None:
        return zip(cached.numbers, map(cached.jobs.__getitem__, cached.places), strict=True)
    walk = kept_walk(spec, Selection(), run_dir) if keep and run_dir is not None else None
    planned = walk if walk is not None else iter_selected(spec, Selection())
    return ((int(p.key, 16), p.job) for p in planned)


def kept_walk(
    spec: Spec, selection: Selection, run_dir: Path
) -> Iterator[PlannedPrediction] | None:
    """`iter_selected(spec, selection)`, writing `run_dir`'s cache once the walk reaches its
    end; None where no cache is kept (`recorder`: a selection, or a spec that reads files).
    The one way a walk writes the cache: `status` (manifest/compare.py), `export` and `report`
    (manifest/scope.py) take it."""
    kept = recorder(spec, selection)
    if kept is None:
        return None
    return _walked_and_kept(iter_selected(spec, selection), kept, run_dir)


def _walked_and_kept(
    walk: Iterator[PlannedPrediction], kept: PlanRecorder, run_dir: Path
) -> Iterator[PlannedPrediction]:
    add = kept.add
    for planned in walk:
        add(planned.key, planned.job)
        yield planned
    kept.save(run_dir)  # not reached when the walk stops short: only a whole plan is kept


class PlanRecorder:
    """A whole walk of the plan, kept as it goes, then written as the run folder's cache."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.jobs = tuple(job.id for job in spec.jobs)
        self.at = {job: at for at, job in enumerate(self.jobs)}
        self.numbers: array[int] = array("Q")
        self.places: array[int] = array("H")

    def add(self, key: str, job: str) -> None:
        """One planned prediction, in plan order."""
        self.numbers.append(int(key, 16))
        self.places.append(self.at[job])

    def save(self, run_dir: Path) -> None:
        """Write the cache atomically (`safefs`); a folder that cannot take it keeps none, or
        its old one."""
        write(run_dir, self.spec, PlanKeys(self.jobs, self.numbers, self.places))


def recorder(spec: Spec, selection: Selection) -> PlanRecorder | None:
    """A recorder for a walk of the whole plan of a spec that `reads_nothing`; else None."""
    return PlanRecorder(spec) if not selection and reads_nothing(spec) else None


def write(run_dir: Path, spec: Spec, keys: PlanKeys) -> None:
    """Write `keys` as the plan of `spec` into the run folder's cache (see the module's doc)."""
    meta = {
        "version": __version__,
        "byteorder": sys.byteorder,
        "digest": plan_digest(spec),
        "jobs": list(keys.jobs),
        "count": len(keys.numbers),
        "sha256": _arrays_sha256(keys.numbers, keys.places),
    }
    line = json.dumps(meta, separators=(",", ":")).encode()
    try:
        with safefs.atomic_writer(run_dir / PLAN_CACHE, run_dir) as handle:
            handle.write(MAGIC + line + b"\n")
            keys.numbers.tofile(handle)
            keys.places.tofile(handle)
    except (OSError, StorageError):
        return


def read(run_dir: Path, spec: Spec) -> PlanKeys | None:
    """The plan of `spec` as the run folder's cache keeps it; None when there is none, or it
    is not this spec's as it is now, or anything about it is wrong."""
    if not reads_nothing(spec):
        return None
    try:
        with safefs.open_regular(run_dir / PLAN_CACHE, run_dir) as handle:
            size = os.fstat(handle.fileno()).st_size
            return _parse(handle.read, size, spec)
    except (OSError, EOFError, ValueError, TypeError, KeyError, IndexError, OverflowError):
        return None


def _parse(read_bytes: Any, size: int, spec: Spec) -> PlanKeys | None:
    if read_bytes(len(MAGIC)) != MAGIC:
        return None
    head = read_bytes(min(size, MAX_META_BYTES))
    end = head.find(b"\n")
    if end < 0:
        return None
    meta = json.loads(head[:end])
    if not isinstance(meta, dict):
        return None
    jobs = tuple(job.id for job in spec.jobs)
    expected = {
        "version": __version__,
        "byteorder": sys.byteorder,
        "digest": plan_digest(spec),
        "jobs": list(jobs),
    }
    if any(meta.get(name) != value for name, value in expected.items()):
        return None
    count = meta.get("count")
    if type(count) is not int or not 0 <= count <= spec.allow.max_predictions:
        return None
    numbers: array[int] = array("Q")
    places: array[int] = array("H")
    body = head[end + 1 :]
    if len(MAGIC) + end + 1 + count * (numbers.itemsize + places.itemsize) != size:
        return None
    rest = read_bytes(size)  # what the first read left of the file
    data = body + rest
    split = count * numbers.itemsize
    numbers.frombytes(data[:split])
    places.frombytes(data[split:])
    if len(places) != count or _arrays_sha256(numbers, places) != meta.get("sha256"):
        return None
    if count and max(places) >= len(jobs):
        return None
    # A plan walks its jobs in spec order, each job's keys together.
    if any(map(operator.gt, places, itertools.islice(places, 1, None))):
        return None
    return PlanKeys(jobs, numbers, places)


def _arrays_sha256(numbers: array[int], places: array[int]) -> str:
    digest = hashlib.sha256(numbers.tobytes())
    digest.update(places.tobytes())
    return digest.hexdigest()
