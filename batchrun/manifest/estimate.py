"""The bill and the time of what `run` would create: the prices, the plan, and what this
folder's manifest learned of each job (its predictions' predict time, tokens and run time).

Per-prediction and per-image prices are exact before anything runs (images: the input's
`num_outputs`, else the model's schema default the pre-flight recorded, else one:
`batchrun.cost.images_asked`). Per-second and per-token prices need what the API will report: the
mean of what this run folder recorded for the same job, else the estimate is "unknown until the
first predictions finish", with the ceiling the job's `timeout` or its `max_tokens` sets.
Time: the creates at the spec's rate, and the predictions `concurrency` at a time for as long as
this folder says the job's predictions run. Every figure is estimated from the user's prices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from batchrun.cost import (
    IMAGE_COUNT_INPUTS,
    Learned,
    Price,
    SchemaCount,
    asked_by,
    bounds,
    count_source,
    signed_money,
)
from batchrun.humanize import human_seconds
from batchrun.manifest.keytable import NO_TIME, KeyTable
from batchrun.manifest.preflight import schema_counts
from batchrun.manifest.reader import manifest_paths
from batchrun.manifest.records import ALL_STATUSES, Status
from batchrun.manifest.table import load_table
from batchrun.planner.expand import PlannedPrediction
from batchrun.spec.load import Spec

UNKNOWN = "unknown until the first predictions finish"


@dataclass
class JobEstimate:
    """What one job's predictions still to create should cost and take."""

    id: str
    price: Price | None
    source: str  # where its price was written
    count: int = 0  # predictions `run` would create
    known: float = 0.0  # USD: the parts known exactly, plus what was learned
    unknown: bool = False  # some part waits for the first predictions to finish
    ceiling: float = 0.0  # USD: the most they can cost (inf: unbounded)
    images: int = 0
    from_input: int = 0  # predictions whose input says how many images (num_outputs)
    input_field: str | None = None  # the field the first of them says it by
    learned: Learned = field(default_factory=Learned)
    timeout: float | None = None
    schema: SchemaCount | None = None  # what its model's schema says of num_outputs

    @property
    def cost(self) -> float | None:
        """The estimate in USD; None when it is unknown until predictions finish."""
        return None if self.unknown else self.known

    def bounded_by(self) -> str:
        """What sets the ceiling of the parts not known yet."""
        price = self.price
        parts = []
        if price is not None and price.by_time and self.learned.seconds is None:
            timeout = "none" if self.timeout is None else human_seconds(self.timeout)
            parts.append(f"per_second × its timeout ({timeout})")
        if price is not None and price.by_tokens and self.learned.output_tokens is None:
            parts.append("per token × max_tokens and the prompt's length")
        return "; ".join(parts)

    def how(self) -> str:
        """How the estimate was made, in a few words."""
        price = self.price
        if price is None:
            return "no price"
        parts = []
        if price.per_prediction:
            parts.append(f"{self.count:,} × per_prediction")
        if price.per_image:
            parts.append(f"{self.images:,} images ({self.images_how()}) × per_image")
        if price.by_time:
            if self.learned.seconds is not None:
                parts.append(
                    f"{self.learned.seconds:.3g}s predict time learned from"
                    f" {self.learned.samples:,} in this folder × per_second"
                )
            else:
                parts.append("per_second: " + UNKNOWN)
        if price.by_tokens:
            if self.learned.output_tokens is not None:
                parts.append(f"tokens learned from {self.learned.samples:,} in this folder")
            else:
                parts.append("per token: " + UNKNOWN)
        return "; ".join(parts) + f" (price from {self.source})"

    def images_how(self) -> str:
        """Where the image count came from: the inputs, the model's schema, or neither."""
        given = f"{self.input_field or IMAGE_COUNT_INPUTS[0]} from the input"
        if self.count and self.from_input == self.count:
            return given
        rest = count_source(self.schema)
        return f"{given}, else {rest}" if self.from_input else rest


@dataclass
class PlanEstimate:
    """The estimate of every job, and the time the whole plan should take."""

    jobs: list[JobEstimate]
    seconds: float | None  # wall time for what run would create; None: not known
    rate: float  # creates per second
    concurrency: int
    learned_run_seconds: float | None

    @property
    def priced(self) -> bool:
        """Whether any job has a price."""
        return any(job.price is not None for job in self.jobs)

    @property
    def known(self) -> float:
        return sum(job.known for job in self.jobs)

    @property
    def unknown(self) -> bool:
        return any(job.unknown for job in self.jobs)

    @property
    def ceiling(self) -> float:
        return sum(job.ceiling for job in self.jobs)


def learned(run_dir: Path, table: KeyTable | None = None) -> dict[str, Learned]:
    """Per job, the means of what this folder's finished predictions reported (`table`: the
    folder's, read already)."""
    if table is None:
        if not manifest_paths(run_dir):
            return {}
        table = load_table(run_dir)
    sums: dict[str, list[float]] = {}
    succeeded = ALL_STATUSES.index(Status.SUCCEEDED)
    for place in table.rows.values():
        seconds = table.predict_time[place]
        if table.status[place] != succeeded or not seconds >= 0:  # NaN: none reported
            continue
        row = sums.setdefault(table.job_of(place), [0, 0.0, 0.0, 0.0, 0.0, 0])
        row[0] += 1
        row[1] += seconds
        inputs, outputs = table.input_tokens[place], table.output_tokens[place]
        row[2] += inputs if inputs >= 0 else 0.0
        row[3] += outputs if outputs >= 0 else 0.0
        row[5] += outputs >= 0
        row[4] += _run_seconds(table, place) or seconds
    return {
        job: Learned(
            seconds=total / count,
            input_tokens=inputs / count if with_tokens else None,
            output_tokens=outputs / count if with_tokens else None,
            run_seconds=run / count,
            samples=int(count),
        )
        for job, (count, total, inputs, outputs, run, with_tokens) in sums.items()
    }


def _run_seconds(table: KeyTable, row: int) -> float | None:
    """From created to completed, as the record's timestamps say (both with a time zone, or
    both without)."""
    start, end = table.created[row], table.completed[row]
    if start == NO_TIME or end == NO_TIME:
        return None
    if table.aware(row, "created") != table.aware(row, "completed"):
        return None
    micros = end - start
    return micros / 10**6 if micros >= 0 else None


class Estimator:
    """What `run` would create, priced and timed, counted during the walk of the plan that
    `plan` makes anyway (`manifest.compare.compare`'s `on_new`, or the summary's walk): `add`
    each prediction run would create, then `result`. Sends nothing.

    `found`: what a pre-flight just made (`plan --online`) found of each target's
    `num_outputs`. `table`: the folder's, read already (None: read here if there is one)."""

    def __init__(
        self,
        spec: Spec,
        *,
        output: Path | None = None,
        found: Mapping[str, SchemaCount] | None = None,
        table: KeyTable | None = None,
    ) -> None:
        run_dir = output or spec.output
        means = learned(run_dir, table)
        counts = schema_counts(spec, run_dir, found)
        self.spec = spec
        self.jobs = {
            job.id: JobEstimate(
                job.id,
                job.price,
                job.price_source,
                learned=means.get(job.id, Learned()),
                timeout=job.timeout,
                schema=counts[job.id],
            )
            for job in spec.jobs
        }

    def add(self, planned: PlannedPrediction) -> None:
        """Count one prediction `run` would create."""
        add(self.jobs[planned.job], planned)

    def result(self) -> PlanEstimate:
        """The estimate of what was added."""
        jobs, spec = self.jobs, self.spec
        concurrency = spec.concurrency
        rate = spec.rate.per_second
        # Each job's predictions as long as this folder says they run; unknown if one job's are.
        working = [job for job in jobs.values() if job.count]
        runs = [job.learned.run_seconds for job in working]
        typical = None
        if working and all(run is not None for run in runs):
            typical = sum((job.learned.run_seconds or 0) * job.count for job in working) / sum(
                job.count for job in working
            )
        count = sum(job.count for job in jobs.values())
        seconds = _wall_time(count, rate, concurrency, typical)
        return PlanEstimate(list(jobs.values()), seconds, rate, concurrency, typical)


def add(job: JobEstimate, planned: PlannedPrediction) -> None:
    """Count one prediction `run` would create into its job's estimate."""
    job.count += 1
    limits = bounds(planned.input, job.timeout, job.schema)
    job.images += limits.images
    field = asked_by(planned.input)
    if field is not None:
        job.from_input += 1
        job.input_field = job.input_field or field
    if job.price is None:
        return
    guess = job.price.estimate(limits, job.learned)
    if guess is None:
        job.unknown = True
    else:
        job.known += guess
    job.ceiling += job.price.ceiling(limits)


def _wall_time(
    count: int, rate: float, concurrency: int, run_seconds: float | None
) -> float | None:
    if count == 0:
        return 0.0
    if run_seconds is None:
        return None
    # The slower of the two limits: creates at the rate, or predictions `concurrency` at a time.
    return max(count / rate, math.ceil(count / concurrency) * run_seconds)


@dataclass
class MoneyChange:
    """What an edit of a spec adds and removes in money for one job (USD, estimated)."""

    added: float = 0.0
    removed: float = 0.0
    unknown: bool = False  # some part waits for the first predictions to finish
    added_ceiling: float = 0.0

    def shown(self) -> str:
        """`+$0.10`, `+$0.10 -$0.03`, or `+? (at most +$6.00)` while a part is unknown."""
        parts = []
        if self.unknown:
            parts.append(f"+? (at most {signed_money(self.added_ceiling)})")
        elif self.added or not self.removed:
            parts.append(signed_money(self.added))
        if self.removed:
            parts.append(signed_money(-self.removed))
        return " ".join(parts)


def money_changes(
    added: Mapping[str, Iterable[PlannedPrediction]],
    removed: Mapping[str, Iterable[PlannedPrediction]],
    new: Spec,
    old: Spec | None,
    run_dir: Path,
) -> dict[str, MoneyChange]:
    """Per job with a price (in the new spec, or the old one for what it removes), what the
    predictions an edit adds and removes should cost: `plan --diff REV --markdown`."""
    means = learned(run_dir)
    changes: dict[str, MoneyChange] = {}
    for spec, lists, adds in ((new, added, True), (old, removed, False)):
        if spec is None:
            continue
        counts = schema_counts(spec, run_dir)
        for job in spec.jobs:
            if job.price is None:
                continue
            change = changes.setdefault(job.id, MoneyChange())
            for planned in lists.get(job.id, ()):
                limits = bounds(planned.input, job.timeout, counts[job.id])
                guess = job.price.estimate(limits, means.get(job.id, Learned()))
                if adds:
                    change.added_ceiling += job.price.ceiling(limits)
                    if guess is None:
                        change.unknown = True
                    else:
                        change.added += guess
                elif guess is not None:
                    change.removed += guess
    return changes
