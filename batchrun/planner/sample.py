"""`--sample N`: a few predictions spread over the whole plan, to try a spec before paying for it.

The first N in plan order are the first values of every matrix variable (five times "a red fox");
a sample should meet every corner of the sweep. So the plan (of one shard, if sharded) is walked
once to count it, and the N keys at evenly spaced places are taken, each from the middle of its
stretch: N of P planned gives the keys at (2i + 1) * P // (2N) for i in 0..N-1. The plan is
deterministic, so the same N keys come every time, and a run after a sample skips them as done.
"""

from __future__ import annotations

from batchrun.planner.expand import iter_plan
from batchrun.spec.load import Spec


def sample_keys(spec: Spec, count: int, *, shard: tuple[int, int] | None = None) -> frozenset[str]:
    """`count` keys spread evenly over the plan (of `shard`); all of them if it has fewer."""
    if count < 1:
        raise ValueError(f"a sample must have at least 1 prediction, got {count}")
    planned = sum(1 for _ in iter_plan(spec, shard=shard))
    if planned <= count:
        return frozenset(p.key for p in iter_plan(spec, shard=shard))
    places = {(2 * i + 1) * planned // (2 * count) for i in range(count)}
    return frozenset(
        p.key for place, p in enumerate(iter_plan(spec, shard=shard)) if place in places
    )
