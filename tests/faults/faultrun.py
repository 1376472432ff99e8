"""Helpers for the fault scenarios: specs, `batchrun run` in a child, and the closing check.

Every scenario ends with `check_accounted`: each planned key in the manifest exactly once with
a terminal status, no prediction created twice, every recorded file whole and in place, and no
`.part` or `.tmp` file left behind.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from runs import (  # noqa: F401  (re-exported for the fault scenarios)
    PNG_END,
    TOKEN,
    assert_files_intact,
    downloading,
    finish,
    ids_recorded,
    manifest_lines,
    painter_spec,
    records,
    start,
    wait_for,
)

from batchrun.manifest.records import IN_FLIGHT, Record
from batchrun.planner.expand import iter_plan
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

# The scenarios' rates: far above what they reach, so only the sandbox's faults slow a run.
FAULT_RATE = "100000/min"


def spec_for(folder: Path, keys: int, concurrency: int, *, side: int = 64, extra: str = "") -> Path:
    """A spec of `keys` image predictions of `side` pixels; `extra` adds input fields."""
    return painter_spec(
        folder,
        keys,
        concurrency=concurrency,
        rate=FAULT_RATE,
        requests=FAULT_RATE,
        side=side,
        extra=extra,
    )


def planned_keys(spec: Path) -> set[str]:
    """Every key the spec plans."""
    return {planned.key for planned in iter_plan(load_spec(spec))}


def hits(seed: int, kind: str, share: float, rolls: int) -> int:
    """How many of the sandbox's first `rolls` dice of `kind` come up as a fault.

    The sandbox rolls one die per request that a fault applies to, from `Random(f"{seed}:{kind}")`
    (see batchrun/sandbox/faults.py); a run that sends at least `rolls` such requests meets at
    least this many faults, whatever order its requests arrive in.
    """
    dice = random.Random(f"{seed}:{kind}")
    return sum(dice.random() < share for _ in range(rolls))


def check_accounted(
    spec: Path,
    sandbox: Sandbox,
    *,
    run_dir: Path | None = None,
    statuses: Iterable[str] = ("succeeded",),
    creates: int | None = None,
) -> dict[str, Record]:
    """The closing check of every scenario; returns the last record of each key."""
    run_dir = run_dir or spec.parent / "run"
    keys = planned_keys(spec)
    found = records(run_dir)
    assert set(found) == keys, "the manifest does not hold exactly the planned keys"
    assert {line["key"] for line in manifest_lines(run_dir)} == keys
    unfinished = {key: r.status for key, r in found.items() if r.status in IN_FLIGHT}
    assert unfinished == {}, "keys left without a terminal status"
    assert set(Counter(r.status for r in found.values())) <= set(statuses)
    stats = sandbox.state.snapshot()
    assert stats["creates"] == (len(keys) if creates is None else creates), "created twice"
    ids = [r.prediction_id for r in found.values() if r.prediction_id]
    assert len(ids) == len(set(ids)), "two keys share a prediction"
    assert_files_intact(run_dir)
    leftovers = sorted(p.name for p in run_dir.rglob("*") if p.suffix in (".part", ".tmp"))
    assert leftovers == []
    for path in run_dir.rglob("*.png"):
        assert path.read_bytes().endswith(PNG_END), f"{path} is torn"
    return found
