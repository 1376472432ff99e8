"""`batchrun plan SPEC [--json] [--out DIR] [--shard I/N] [--sample N]`: what `run` would do.

Without a manifest to compare with, every planned prediction is new: the summary shows the
output folder and, per job, its target, its count and a few example inputs. With one, each job's
predictions are counted as new, done, in flight, failed, to download or stale, and the keys the
manifest holds that the spec no longer plans are counted too (see batchrun/manifest/compare.py;
the rule that places a key is batchrun/manifest/state.py, which `run` follows too).

`--shard`, `--sample` and `--limit` select as they do for `run` (batchrun/planner/sample.py):
the summary counts and shows only what they select, and `--json` lists only that.

`--json` streams one compact JSON object per planned prediction (JSON Lines), so
`plan --json | head` is cheap; with a manifest, each object also says its `state`.

`--diff REV` compares the spec with itself as it is at git revision REV instead (see
batchrun/planner/diff.py): every prediction added and removed, with `--json` one line per change
and `--markdown` a pull-request comment. It needs no manifest; with one, it says how much
predict time the added predictions should take.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from batchrun import jsontext
from batchrun.cost import ESTIMATED, Learned, SchemaCount, bounds, count_from, money
from batchrun.errors import SpecError, UsageError
from batchrun.exitcodes import ExitCode
from batchrun.frontend.destination import write_lines
from batchrun.frontend.diff_views import base_note, diff_lines, render_diff, render_markdown
from batchrun.frontend.options.plan import PlanArgs
from batchrun.frontend.run_target import reach_lines
from batchrun.humanize import counted, human_seconds, shown_path
from batchrun.manifest.compare import PlanComparison, compare, iter_states
from batchrun.manifest.estimate import (
    UNKNOWN,
    Estimator,
    MoneyChange,
    PlanEstimate,
    learned,
    money_changes,
)
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.preflight import schema_counts
from batchrun.manifest.reader import manifest_paths
from batchrun.manifest.state import STATES, State
from batchrun.manifest.table import load_table
from batchrun.manifest.timing import recorded
from batchrun.planner.diff import PlanDiff, diff_plans
from batchrun.planner.expand import FileInput, PlannedPrediction, Shard, parse_shard
from batchrun.planner.sample import Selection, iter_selected
from batchrun.planner.summary import PlanSummary, summarize
from batchrun.spec.allow import Allowances
from batchrun.spec.load import Spec, load_spec
from batchrun.spec.revision import spec_at_revision

EXAMPLE_WIDTH = 110
# Inputs shown per job: a few show what a job sends; a sample is shown whole, up to a screenful.
EXAMPLES = 3
SAMPLE_EXAMPLES = 40


def main(args: PlanArgs) -> int:
    """Load the spec, then print its plan as a summary or as JSON Lines."""
    spec = load_spec(args.spec, Allowances.of(args.allow_outside, args.max_predictions))
    shard = parse_shard(args.shard) if args.shard else None
    selection = Selection(shard, args.sample, args.limit)
    output = Path(os.path.abspath(args.out)) if args.out else None
    if args.diff:
        return _print_diff(args, args.diff, spec, selection, output)
    if args.markdown:
        raise UsageError("--markdown shows a diff: use it with --diff REV")
    counts: dict[str, SchemaCount] = {}  # what a pre-flight here found of each model's num_outputs
    if args.online:
        # Here, not at the top: offline, `plan` never loads the HTTP stack.
        from batchrun.frontend.online_check import online_check

        found = online_check(spec, args)
        if found.issues:
            raise SpecError(found.issues)
        counts = found.counts
    has_manifest = bool(manifest_paths(output or spec.output))
    if args.json:
        return _print_json(spec, selection, output, has_manifest, counts)
    # A sample is there to be looked at: each of its predictions, up to a screenful.
    examples = min(args.sample, SAMPLE_EXAMPLES) if args.sample else EXAMPLES
    # The plan is walked once: the estimate counts what run would create as the walk meets it.
    if has_manifest:
        # Read once, a few numbers per key: the comparison places each key in it, and the
        # estimate reads what the folder learned from it.
        table = load_table(output or spec.output)
        pricing = Estimator(spec, output=output, found=counts, table=table)
        compared = compare(
            spec,
            selection=selection,
            output=output,
            examples=examples,
            table=table,
            on_new=pricing.add,
        )
        print(render_comparison(compared, spec, selection))
    else:
        pricing = Estimator(spec, output=output, found=counts)
        chosen = _counted(iter_selected(spec, selection), pricing.add)
        summary = summarize(spec, shard=shard, output=output, examples=examples, plan=chosen)
        print(render_summary(summary, spec, selection))
    estimated = render_estimate(pricing.result())
    if estimated:
        print("\n".join(estimated))
    return ExitCode.OK


def _counted(
    plan: Iterator[PlannedPrediction], count: Callable[[PlannedPrediction], None]
) -> Iterator[PlannedPrediction]:
    """The plan, each prediction handed to `count` as it passes (with no manifest, every
    planned prediction is one run would create)."""
    for planned in plan:
        count(planned)
        yield planned


def _print_diff(
    args: PlanArgs, revision: str, spec: Spec, selection: Selection, output: Path | None
) -> int:
    if selection:
        raise UsageError("--diff compares whole plans; it takes no --shard, --sample or --limit")
    if args.json and args.markdown:
        raise UsageError("--json and --markdown exclude each other")
    shown = spec.display_path or shown_path(spec.path)
    with spec_at_revision(spec.path, revision, spec.allow) as old:
        diff = diff_plans(old.spec, spec)
        known = recorded(output or spec.output)
        if args.json:
            if old.problem or diff.base_problem:  # stdout is JSON Lines: the why goes to stderr
                print(f"batchrun: {base_note(old, diff)}", file=sys.stderr)
            return _write_lines(diff_lines(diff, known))
        if args.markdown:
            money = _money(diff, spec, old.spec, output or spec.output)
            sys.stdout.write(render_markdown(diff, old, shown, known, money))
        else:
            print(render_diff(diff, old, shown, known))
    return ExitCode.OK


def _money(diff: PlanDiff, new: Spec, old: Spec | None, run_dir: Path) -> dict[str, MoneyChange]:
    """Per priced job, the money the diff adds (added, and changed as they are now) and removes
    (removed, and changed as they were)."""
    added = {
        job.id: [*job.added, *(c.new for g in job.changed for c in g.changes)] for job in diff.jobs
    }
    removed = {
        job.id: [*job.removed, *(c.old for g in job.changed for c in g.changes)]
        for job in diff.jobs
    }
    return money_changes(added, removed, new, old, run_dir)


def _print_json(
    spec: Spec,
    selection: Selection,
    output: Path | None,
    has_manifest: bool,
    found: Mapping[str, SchemaCount],
) -> int:
    lines: Iterator[dict[str, Any]]
    # The manifests read once, for the states and what the folder learned of each job.
    table = load_table(output or spec.output) if has_manifest else None
    priced = _pricer(spec, output, found, table)
    if table is not None:
        states = iter_states(spec, selection=selection, output=output, table=table)
        lines = (
            {**planned.to_json(), "state": state, **priced(planned, state is State.NEW)}
            for planned, state in states
        )
    else:
        lines = (
            {**planned.to_json(), **priced(planned, True)}
            for planned in iter_selected(spec, selection)
        )
    return _write_lines(lines)


def _pricer(
    spec: Spec, output: Path | None, found: Mapping[str, SchemaCount], table: KeyTable | None
) -> Callable[[PlannedPrediction, bool], dict[str, Any]]:
    """What a `plan --json` line adds for a priced job: what that prediction should cost, and
    the most it can (for one `run` would create), and for a per-image price how many images
    it counted and where that count came from."""
    means = learned(output or spec.output, table)
    counts = schema_counts(spec, output or spec.output, found)
    jobs = {job.id: job for job in spec.jobs}

    def priced(planned: PlannedPrediction, to_create: bool) -> dict[str, Any]:
        job = jobs[planned.job]
        if job.price is None or not to_create:
            return {}
        schema = counts[job.id]
        limits = bounds(planned.input, job.timeout, schema)
        guess = job.price.estimate(limits, means.get(job.id, Learned()))
        ceiling = job.price.ceiling(limits)
        cost: dict[str, Any] = {
            "estimated_usd": None if guess is None else round(guess, 9),
            "at_most_usd": None if math.isinf(ceiling) else round(ceiling, 9),
            "price": job.price.to_json(),
            "estimated_from": "your prices",
        }
        if job.price.per_image:
            cost["images"] = limits.images
            cost["images_from"] = count_from(planned.input, schema)
        return {"cost": cost}

    return priced


def render_estimate(found: PlanEstimate) -> list[str]:
    """What `run` would create should cost (per job, in total) and take, and how that was
    estimated: the prices, and what this folder learned."""
    lines: list[str] = []
    if found.priced:
        lines += ["", f"cost of what run would create ({ESTIMATED}):"]
        for job in found.jobs:
            if job.price is None or not job.count:
                continue
            what = counted(job.count, "prediction")
            if job.cost is not None:
                lines.append(f"  {job.id}: {money(job.cost)} for {what}: {job.how()}")
            else:
                lines.append(
                    f"  {job.id}: {UNKNOWN} ({what}); at most {money(job.ceiling)}:"
                    f" {job.bounded_by()} (price from {job.source})"
                )
        unpriced = [job.id for job in found.jobs if job.price is None and job.count]
        if unpriced:
            lines.append(f"  no price: {', '.join(unpriced)} (not counted)")
        total = f"  total: {money(found.known)}"
        if found.unknown:
            total += f" known so far; at most {money(found.ceiling)}"
        lines.append(total)
    count = sum(job.count for job in found.jobs)
    if count:
        rate = f"creates at {found.rate:.3g}/s, {found.concurrency} in flight"
        if found.seconds is not None and found.learned_run_seconds is not None:
            lines.append(
                f"time: about {human_seconds(found.seconds)}: {rate},"
                f" {human_seconds(found.learned_run_seconds)} a prediction as this folder's"
                " manifest learned"
            )
        else:
            lines.append(
                f"time: at least {human_seconds(count / found.rate)} ({rate}); how long a"
                f" prediction runs is {UNKNOWN}"
            )
    return lines


def _write_lines(lines: Iterator[dict[str, Any]]) -> int:
    # A reader that stops early (`| head`) ends this with BrokenPipeError; cli.py ends quietly.
    dumps = jsontext.encoder(separators=(",", ":"))
    write_lines(map(dumps, lines), sys.stdout)
    return ExitCode.OK


def render_summary(summary: PlanSummary, spec: Spec, selection: Selection | None = None) -> str:
    """The readable plan: output folder, then each job with its count and examples."""
    lines = [f"{summary.name}: {spec.display_path or shown_path(summary.spec)}"]
    lines.extend(_selected(summary.shard, selection))
    lines.append(f"output: {shown_path(summary.output)} (no manifest yet: every prediction is new)")
    lines.extend(reach_lines(spec))
    for job in summary.jobs:
        lines.append("")
        lines.append(f"job {job.id}: {job.target}, {counted(job.count, 'prediction')}")
        for example in job.examples:
            lines.append("  " + _clip(json.dumps(_display(example.input), ensure_ascii=False)))
        more = job.count - len(job.examples)
        if more > 0:
            lines.append(f"  … and {more:,} more")
    lines.append("")
    lines.append(
        f"total: {counted(summary.total, 'prediction')} in {counted(len(summary.jobs), 'job')}"
    )
    return "\n".join(lines)


def render_comparison(plan: PlanComparison, spec: Spec, selection: Selection | None = None) -> str:
    """The readable plan against the manifest: per job, what is new, done, in flight, failed."""
    lines = [f"{plan.name}: {spec.display_path or shown_path(plan.spec)}"]
    lines.extend(_selected(plan.shard, selection))
    manifests = counted(len(plan.manifests), "manifest")
    lines.append(
        f"output: {shown_path(plan.output)} ({counted(plan.recorded, 'prediction')} recorded "
        f"in {manifests})"
    )
    if plan.lock is not None:
        lines.append(f"lock: {shown_path(plan.lock.path)}")
    if plan.sandbox:
        lines.append(
            "counted for a run on the sandbox, as the last run here was; "
            "a run on a real API creates again what the sandbox made"
        )
    if plan.other_api:
        other = "a real API" if plan.sandbox else "the sandbox"
        lines.append(
            f"{counted(plan.other_api, 'recorded prediction')} made by {other} count as new here"
        )
    lines.extend(reach_lines(spec))
    for job in plan.jobs:
        lines.append("")
        pinned = f" (pinned to {job.pinned[:12]}… by the lock)" if job.pinned else ""
        lines.append(f"job {job.id}: {job.target}{pinned}, {counted(job.total, 'prediction')}")
        lines.append("  " + _states(job.counts))
        for example in job.new_examples:
            lines.append("  new: " + _clip(json.dumps(_display(example.input), ensure_ascii=False)))
        gone = plan.not_in_spec.pop(job.id, 0)
        if gone:
            lines.append(f"  {counted(gone, 'recorded prediction')} no longer in the spec (kept)")
    for job_id, gone in sorted(plan.not_in_spec.items()):
        lines.append("")
        lines.append(f"job {job_id}: no longer in the spec; {counted(gone, 'recorded prediction')}")
    lines.append("")
    counts = Counter({state: plan.count(state) for state in STATES})
    lines.append(f"total: {counted(plan.total, 'prediction')}: {_states(counts)}")
    lines.append("run would: " + _would(counts))
    return "\n".join(lines)


def _selected(shard: Shard | None, selection: Selection | None) -> list[str]:
    if selection is not None and (selection.sample is not None or selection.limit is not None):
        said = selection.describe()
        return [f"{said}: only what `run {said}` would act on is counted"]
    if shard is not None:
        return [f"shard {shard}: only the keys of this shard are counted"]
    return []


_SHOWN_STATES = {
    State.NEW: "new",
    State.DONE: "done",
    State.IN_FLIGHT: "in flight",
    State.FAILED: "failed",
    State.DOWNLOAD: "to download",
    State.STALE: "stale",
    State.MOVE: "to move",
}
# Shown even when none: every plan with a manifest has these to say. Stale keys exist only once
# SPEC.lock moves on, and keys to move once `files` changes, so those are shown only when some.
_ALWAYS_SHOWN = frozenset(STATES) - {State.STALE, State.MOVE}


def _states(counts: Counter[State]) -> str:
    shown = [state for state in STATES if state in _ALWAYS_SHOWN or counts[state]]
    return ", ".join(f"{counts[state]:,} {_SHOWN_STATES[state]}" for state in shown)


def _would(counts: Counter[State]) -> str:
    parts = []
    if counts[State.NEW]:
        parts.append(f"create {counts[State.NEW]:,}")
    if counts[State.IN_FLIGHT]:
        parts.append(f"pick up {counts[State.IN_FLIGHT]:,} in flight")
    if counts[State.DOWNLOAD]:
        parts.append(f"download the missing files of {counts[State.DOWNLOAD]:,}")
    if counts[State.MOVE]:
        parts.append(
            f"move the files of {counts[State.MOVE]:,} to the paths `files` now gives"
            " (no create, no download)"
        )
    said = "; ".join(parts) if parts else "nothing: every planned prediction is done"
    if counts[State.FAILED]:
        said += f"; {counts[State.FAILED]:,} failed stay failed unless --retry-failed"
    if counts[State.STALE]:
        said += (
            f"; {counts[State.STALE]:,} stale (run by a version other than the lock's) stay "
            "as they are unless --rerun-stale"
        )
    return said


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
