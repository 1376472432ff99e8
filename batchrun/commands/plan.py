"""`batchrun plan SPEC [--json] [--out DIR] [--shard I/N]`: what `run` would do; sends nothing.

Without a manifest to compare with, every planned prediction is new: the summary shows the
output folder and, per job, its target, its count and a few example inputs. `--json` streams
one compact JSON object per planned prediction (JSON Lines), so `plan --json | head` is cheap.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from batchrun.cli import EXIT_OK
from batchrun.humanize import shown_path
from batchrun.plan import (
    FileInput,
    PlanSummary,
    Shard,
    iter_plan,
    parse_shard,
    summarize,
)
from batchrun.spec import Spec, load_spec

EXAMPLE_WIDTH = 110


def main(args: argparse.Namespace) -> int:
    """Load the spec, then print its plan as a summary or as JSON Lines."""
    spec = load_spec(args.spec)
    shard = parse_shard(args.shard) if args.shard else None
    if args.json:
        return _print_json(spec, shard)
    output = Path(os.path.abspath(args.out)) if args.out else None
    print(render_summary(summarize(spec, shard=shard, output=output), spec))
    return EXIT_OK


def _print_json(spec: Spec, shard: Shard | None) -> int:
    write = sys.stdout.write
    try:
        for planned in iter_plan(spec, shard=shard):
            write(json.dumps(planned.to_json(), ensure_ascii=False, separators=(",", ":")))
            write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (head, less) has all it wanted. Point stdout at /dev/null so the
        # interpreter's final flush does not complain about the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_OK


def render_summary(summary: PlanSummary, spec: Spec) -> str:
    """The readable plan: output folder, then each job with its count and examples."""
    lines = [f"{summary.name}: {spec.display_path or shown_path(summary.spec)}"]
    if summary.shard is not None:
        lines.append(f"shard {summary.shard}: only the keys of this shard are counted")
    lines.append(f"output: {shown_path(summary.output)} (no manifest yet: every prediction is new)")
    for job in summary.jobs:
        lines.append("")
        lines.append(f"job {job.id}: {job.target}, {_count(job.count, 'prediction')}")
        for example in job.examples:
            lines.append("  " + _clip(json.dumps(_display(example.input), ensure_ascii=False)))
        more = job.count - len(job.examples)
        if more > 0:
            lines.append(f"  … and {more:,} more")
    lines.append("")
    lines.append(
        f"total: {_count(summary.total, 'prediction')} in {_count(len(summary.jobs), 'job')}"
    )
    return "\n".join(lines)


def _display(value: Any) -> Any:
    if isinstance(value, FileInput):
        return {"file": value.relpath}
    if isinstance(value, dict):
        return {key: _display(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_display(item) for item in value]
    return value


def _clip(text: str) -> str:
    return text if len(text) <= EXAMPLE_WIDTH else text[: EXAMPLE_WIDTH - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"
