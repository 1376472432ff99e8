"""`batchrun status RUN_OR_SPEC [--json] [--csv FILE|-] [--all]`: what the manifest says.

It counts the current spec's whole plan, recorded or not ("20 of 100 done, 80 not started"),
with the numbers `plan` gives (both come from `manifest.compare.compare`), and exits 0 only when
every planned prediction succeeded, as `run` does; a spec that never ran is its whole plan not
started ("0 of 100 planned predictions done, 100 not started", exit 1). With `--all`, it also
counts the recorded predictions the spec no longer plans (after an edit), which are otherwise
only counted on a line of their own. Each API the records came from is named, with how many it made.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from batchrun.cost import ESTIMATED, money
from batchrun.errors import BatchrunError, UsageError
from batchrun.frontend.destination import is_stdout, output_stream, shown_as
from batchrun.frontend.options.status import StatusArgs
from batchrun.frontend.run_target import run_and_spec, sandbox_hint
from batchrun.humanize import human_bytes, human_seconds, printable, shown_path
from batchrun.manifest.compare import PlanComparison, compare
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.reader import manifest_paths
from batchrun.manifest.records import ALL_STATUSES, Status
from batchrun.manifest.scope import scope_table, spec_of_run, spec_to_scope
from batchrun.manifest.state import State, pins_for_reading
from batchrun.manifest.table import load_table
from batchrun.readout.status import (
    SANDBOX_NOTE,
    RunStatus,
    failure_reason,
    summarize_table,
    write_csv,
)
from batchrun.spec.load import Spec

FAILURES_SHOWN = 10


def main(args: StatusArgs) -> int:
    """Print the run's status; exit 0 when every planned key succeeded (files as recorded)."""
    run_dir, spec = run_and_spec(args.target, ran=False)
    never_ran = not manifest_paths(run_dir)  # only a spec's folder (run_and_spec checks others)
    # Read once, a few numbers per key: a manifest may be hundreds of megabytes.
    # Kept on disk (manifest/tablecache.py), with the variables when every line is read: the
    # report or export after it takes its table from there.
    table = load_table(run_dir, save=not never_ran, variables_if_read=True)
    scoped, why_unscoped = spec_to_scope(spec or spec_of_run(table.headers))
    # Files whose size, mtime and inode are as when last hashed are not read (unless --deep).
    hashed = HashedFiles(run_dir, deep=args.deep)
    plan = _plan(scoped, run_dir, hashed, table, keep=not never_ran)
    if never_ran and plan is None:  # nothing recorded, and the plan cannot be counted
        run_and_spec(args.target)  # says so: no manifest here, nothing has run yet
    # The current spec's predictions; those it no longer plans are named on a line of their own.
    split = scope_table(
        table, scoped, why_unscoped, planned=plan.total if plan is not None else None
    )
    pins = pins_for_reading(split.spec)
    rows = split.chosen_rows(args.all)
    status = summarize_table(table, rows, pins, run_dir=run_dir, plan=plan, hashed=hashed)
    if not never_ran:  # a status writes nothing into a folder that is not there yet
        hashed.save()
    csv_on_stdout = args.csv is not None and is_stdout(args.csv)
    if csv_on_stdout and args.json:
        raise UsageError(
            f"--csv {args.csv} and --json both write to stdout; give --csv a file name"
        )
    if args.csv:
        records = table.records(split.chosen_rows(args.all))
        with output_stream(args.csv) as stream:
            written = write_csv(records, stream)
        print(f"batchrun: wrote {written} rows to {shown_as(args.csv)}", file=sys.stderr)
    note = split.note(args.all)
    if args.json:
        data = status.to_json()
        data["not_in_spec"] = split.gone
        data["not_in_spec_counted"] = bool(args.all and split.gone)
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        # With the CSV on stdout, the status goes to stderr: stdout stays one CSV document.
        lines = _never_ran(status, split.spec) if never_ran else render(status)
        shown = "\n".join(lines + ([note] if note else []))
        print(shown, file=sys.stderr if csv_on_stdout else sys.stdout)
    return 0 if status.complete else 1


def _plan(
    spec: Spec | None, run_dir: Path, hashed: HashedFiles, table: KeyTable, *, keep: bool
) -> PlanComparison | None:
    """The spec's plan against the run folder, as `plan` counts it; None without a spec, or
    when its lock cannot be read (the records alone are counted then). Only keys and jobs:
    from the folder's plan cache when it holds this spec's (`keep`: write it after a walk)."""
    if spec is None:
        return None
    try:
        return compare(spec, output=run_dir, hashed=hashed, table=table, examples=0, keep_plan=keep)
    except BatchrunError:
        return None


def _never_ran(status: RunStatus, spec: Spec | None) -> list[str]:
    """A spec's status before its first run: its whole plan, not started."""
    hint = sandbox_hint(spec) if spec is not None else ""
    first = f"{shown_path(status.run_dir)}: no manifest yet; nothing has run here"
    lines = [first + (f" ({hint})" if hint else "")]
    if status.planned is not None:
        planned = status.planned
        lines.append(f"0 of {planned:,} planned predictions done, {planned:,} not started")
    return lines


# How status names a planned key's state after "N of M done" (plan's words, but for "new").
_SAID = {
    State.NEW: "not started",
    State.IN_FLIGHT: "in flight",
    State.FAILED: "failed",
    State.DOWNLOAD: "to download",
    State.STALE: "stale",
    State.MOVE: "to move",
}


def headline(status: RunStatus) -> str | None:
    """ "20 of 100 done, 80 not started": the whole plan's count (None without a plan)."""
    if status.planned is None:
        return None
    parts = [f"{status.states[State.DONE]:,} of {status.planned:,} done"]
    parts += [f"{status.states[s]:,} {said}" for s, said in _SAID.items() if status.states[s]]
    return ", ".join(parts)


def render(status: RunStatus) -> list[str]:
    """The human-readable status, one line per fact."""
    manifests = len(status.manifests)
    noun = "manifest" if manifests == 1 else "manifests"
    lines = [f"{shown_path(status.run_dir)}: {status.total} predictions in {manifests} {noun}"]
    shown = [s for s in ALL_STATUSES if status.counts[s]] or [Status.SUCCEEDED]
    width = max([len("total"), *(len(job) for job in status.jobs)])
    lines.append("  " + "job".ljust(width) + "".join(f"{s:>12}" for s in shown) + f"{'total':>8}")
    for job, counts in status.jobs.items():
        cells = "".join(f"{counts[s]:>12}" for s in shown)
        lines.append("  " + job.ljust(width) + cells + f"{sum(counts.values()):>8}")
    if len(status.jobs) > 1:
        cells = "".join(f"{status.counts[s]:>12}" for s in shown)
        lines.append("  " + "total".ljust(width) + cells + f"{status.total:>8}")
    said = headline(status)
    if said is not None:
        lines.append(said)
    lines.extend(f"api: {line}" for line in status.api_lines())
    if status.sandbox:
        lines.append(SANDBOX_NOTE)
    files = f"files: {status.files} ({human_bytes(status.bytes)})"
    if status.missing_files:
        files += f", {status.missing_files} missing"
    lines.append(files)
    if status.first_created and status.last_completed:
        span = (status.last_completed - status.first_created).total_seconds()
        lines.append(
            f"time: {status.first_created:%Y-%m-%d %H:%M:%S} to "
            f"{status.last_completed:%Y-%m-%d %H:%M:%S} UTC ({human_seconds(max(span, 0))}); "
            f"predict time {human_seconds(status.predict_time)}"
        )
    if status.priced:
        jobs = ", ".join(f"{job} {money(usd)}" for job, usd in status.job_spent.items())
        lines.append(f"cost: {money(status.spent)} ({ESTIMATED}); by job: {jobs}")
    stale = status.states[State.STALE]
    if stale:
        lines.append(
            f"stale: {stale} succeeded with a version other than the one SPEC.lock now pins "
            "(run --rerun-stale predicts them again)"
        )
    if status.possible_duplicates:
        lines.append(f"possible duplicates: {status.possible_duplicates}")
    if status.failures:
        lines.append("failures:")
        for record in status.failures[:FAILURES_SHOWN]:
            reason = failure_reason(record)
            # Server text, kept whole in the manifest: shown without escapes, cut short.
            lines.append(f"  {record.key}  {record.job}  {record.status}: {printable(reason)}")
        if len(status.failures) > FAILURES_SHOWN:
            lines.append(f"  … and {len(status.failures) - FAILURES_SHOWN} more (--json lists all)")
    return lines
