"""`--sample N`, `--shard I/N` and `--limit N`: which part of the plan `plan` shows and `run` runs.

A sample is the first N of one fixed ranking of the plan (of the shard, if sharded), so samples
nest: the keys of `--sample 4` are among those of `--sample 8`, and running 4 then 8 creates 8.
The ranking has two parts:

1. **Coverage**: per job, the plan is walked in order and a prediction is taken when it brings a
   value not yet seen to every matrix axis that still has one unseen. On a full product (a matrix
   without include or exclude) this takes exactly as many predictions as the longest axis has
   values, so `--sample N` with N at least that meets every value of every axis; where include,
   exclude or a shard leave holes, a second walk takes a prediction for each value still unseen.
   The jobs take turns, so with several jobs N at least the sum of their longest axes covers all.
2. **Spread**: the rest of the plan in the order of the van der Corput sequence (1/2, 1/4, 3/4,
   1/8, ...) scaled to the plan's length: whatever N, the places taken are spread evenly over it.

Values are compared as canonical JSON strings and sets are only asked for membership, never
iterated: the same sample on every machine, whatever `PYTHONHASHSEED` says. The plan is walked
twice (three times when the coverage walk leaves holes), streaming, in memory that grows with the
distinct values of the matrix, not with the plan.

`--limit N` then keeps the first N of what shard and sample selected, in plan order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from batchrun.planner.expand import PlannedPrediction, Shard, iter_plan
from batchrun.planner.keys import canonical_json
from batchrun.spec.load import Spec


@dataclass(frozen=True)
class Selection:
    """What `--shard`, `--sample` and `--limit` select of a plan; the default selects it all."""

    shard: Shard | None = None
    sample: int | None = None
    limit: int | None = None

    def __bool__(self) -> bool:
        return self.shard is not None or self.sample is not None or self.limit is not None

    def describe(self) -> str:
        """The options as a person typed them, e.g. `--sample 4 --limit 2`."""
        parts = []
        if self.shard is not None:
            parts.append(f"--shard {self.shard}")
        if self.sample is not None:
            parts.append(f"--sample {self.sample}")
        if self.limit is not None:
            parts.append(f"--limit {self.limit}")
        return " ".join(parts)


def iter_selected(
    spec: Spec, selection: Selection, *, sampled: frozenset[str] | None = None
) -> Iterator[PlannedPrediction]:
    """The planned predictions `selection` keeps, in plan order: shard, then sample, then limit.

    `run` acts on exactly these (`batchrun.engine.survey`), and `plan` shows them. `sampled`:
    the sample's keys when the caller has them already.
    """
    chosen = sampled
    if chosen is None and selection.sample is not None:
        chosen = sample_keys(spec, selection.sample, shard=selection.shard)
    plan = iter_plan(spec, shard=selection.shard)
    if chosen is None and selection.limit is None:
        return plan  # the whole plan (of the shard): nothing to pass over a step per key
    return _kept(plan, chosen, selection.limit)


def _kept(
    plan: Iterator[PlannedPrediction], chosen: frozenset[str] | None, limit: int | None
) -> Iterator[PlannedPrediction]:
    kept = 0
    for planned in plan:
        if limit is not None and kept >= limit:
            return
        if chosen is None or planned.key in chosen:
            kept += 1
            yield planned


def sample_keys(spec: Spec, count: int, *, shard: tuple[int, int] | None = None) -> frozenset[str]:
    """The first `count` keys of the plan's (or shard's) sample ranking; all if it has fewer."""
    return frozenset(ranked_keys(spec, count, shard=shard))


def ranked_keys(spec: Spec, count: int, *, shard: tuple[int, int] | None = None) -> list[str]:
    """The first `count` keys of the sample ranking, in rank order (see the module's doc)."""
    if count < 1:
        raise ValueError(f"a sample must have at least 1 prediction, got {count}")
    values, planned = _distinct_values(spec, shard)
    # The spread part never needs more than `count` places, even when coverage took some.
    places = dict.fromkeys(_spread(planned, count))
    at: dict[int, str] = {}
    axes = {job.id: job.matrix.names for job in spec.jobs}
    cover = {job: _Cover(unseen, axes[job]) for job, unseen in values.items()}
    for place, prediction in enumerate(iter_plan(spec, shard=shard)):
        cover[prediction.job].strict(prediction)
        if place in places:
            at[place] = prediction.key
    if any(job.unseen_left for job in cover.values()):
        for prediction in iter_plan(spec, shard=shard):
            cover[prediction.job].loose(prediction)
    ranking = dict.fromkeys(_turns([job.ranked() for job in cover.values()]))
    for place in places:
        if len(ranking) >= count:
            break
        ranking.setdefault(at[place])
    return list(ranking)[:count]


def _distinct_values(
    spec: Spec, shard: tuple[int, int] | None
) -> tuple[dict[str, dict[str, dict[str, None]]], int]:
    """Per job, per variable, the distinct values (canonical JSON) of its planned predictions;
    and how many predictions the plan (of the shard) has."""
    values: dict[str, dict[str, dict[str, None]]] = {job.id: {} for job in spec.jobs}
    planned = 0
    for prediction in iter_plan(spec, shard=shard):
        planned += 1
        per_variable = values[prediction.job]
        for name, value in prediction.vars.items():
            per_variable.setdefault(name, {})[canonical_json(value)] = None
    return values, planned


class _Cover:
    """One job's coverage: which values of each variable are still unseen, and what took them."""

    def __init__(self, values: dict[str, dict[str, None]], axes: tuple[str, ...]) -> None:
        self.unseen: dict[str, set[str]] = {name: set(found) for name, found in values.items()}
        # The strict walk asks for the axes' values; variables only some include entries
        # set are left to the loose walk.
        self.axes = [(name, self.unseen[name]) for name in axes if name in self.unseen]
        self.taken: list[str] = []
        self.unseen_left = sum(len(left) for left in self.unseen.values())

    def strict(self, prediction: PlannedPrediction) -> None:
        """Take the prediction if it brings an unseen value to every axis that has one."""
        if not self.unseen_left:
            return
        found = []
        for name, left in self.axes:
            if not left:
                continue
            value = _value(prediction.vars, name)
            if value is None or value not in left:
                return
            found.append((left, value))
        if found:
            self._take(prediction.key, found)

    def loose(self, prediction: PlannedPrediction) -> None:
        """Take the prediction if it brings any unseen value (for what `strict` left unseen)."""
        if not self.unseen_left:
            return
        found = []
        for name, left in self.unseen.items():
            value = _value(prediction.vars, name) if left else None
            if value is not None and value in left:
                found.append((left, value))
        if found:
            self._take(prediction.key, found)

    def _take(self, key: str, found: list[tuple[set[str], str]]) -> None:
        for left, value in found:
            left.discard(value)
        self.unseen_left -= len(found)
        self.taken.append(key)

    def ranked(self) -> list[str]:
        """What coverage took, in spread order: `--sample 2` gets the first and the middle."""
        return [self.taken[place] for place in _spread(len(self.taken), len(self.taken))]


def _value(row: dict[str, Any], name: str) -> str | None:
    return canonical_json(row[name]) if name in row else None


def _turns(lists: list[list[str]]) -> Iterator[str]:
    """The first of each list, then the second of each, and so on."""
    longest = max((len(one) for one in lists), default=0)
    for turn in range(longest):
        for one in lists:
            if turn < len(one):
                yield one[turn]


def _spread(total: int, count: int) -> Iterator[int]:
    """The first `count` distinct places of 0..total-1 in van der Corput order: 0, total/2,
    total/4, 3 total/4, ...; the first n of them are spread evenly over the places for any n."""
    seen: set[int] = set()
    step = 0
    while len(seen) < min(count, total):
        bits = step.bit_length()
        reversed_bits = int(f"{step:0{bits}b}"[::-1], 2) if bits else 0
        place = reversed_bits * total >> bits
        step += 1
        if place not in seen:
            seen.add(place)
            yield place
