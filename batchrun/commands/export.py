"""`batchrun export RUN_OR_SPEC --format jsonl|csv|hf --to PATH [--all] [--force]`: a run as a
dataset.

One row per prediction of the current spec (see batchrun/readout/export/rows.py for the columns);
with `--all`, the recorded predictions the spec no longer plans too. `--to -` writes JSON Lines
or CSV to stdout; `hf` writes a folder the Hugging Face `datasets` library loads as it is, with a
card that says how much of the plan it holds and where it came from.
"""

from __future__ import annotations

import os
import sys
from array import array
from pathlib import Path

from batchrun._version import __version__
from batchrun.errors import UsageError
from batchrun.exitcodes import ExitCode
from batchrun.frontend.destination import is_stdout, output_stream, shown_as
from batchrun.frontend.options.export import ExportArgs
from batchrun.frontend.run_target import run_and_spec
from batchrun.humanize import counted, shown_path
from batchrun.manifest.scope import scope_table, spec_of_run, spec_to_scope
from batchrun.manifest.table import load_table
from batchrun.readout.export.card import Card
from batchrun.readout.export.hf import write_hf
from batchrun.readout.export.origin import provenance
from batchrun.readout.export.rows import table_columns
from batchrun.readout.export.twocores import write_export


def main(args: ExportArgs) -> int:
    """Write the export and say on stderr what went in and what was left out."""
    run_dir, spec = run_and_spec(args.target)
    # A few numbers per key and its variables (kept on disk, as the report keeps them); each
    # record is read back as written.
    table = load_table(run_dir, variables=True, save=True)
    scoped, why_unscoped = spec_to_scope(spec or spec_of_run(table.headers))
    split = scope_table(table, scoped, why_unscoped, keep_gone=args.all)
    chosen = array("I", split.chosen_rows(args.all))  # 4 bytes a row
    stdout = is_stdout(args.to)
    notes = []
    if args.format == "hf":
        if stdout:
            raise UsageError("--format hf writes a folder; --to - (stdout) takes jsonl or csv")
        card = Card(
            name=split.spec.name if split.spec else run_dir.name,
            provenance=provenance(split.spec, table.headers, __version__),
            planned=split.planned,
            why_unplanned=split.why_unscoped,
            not_started=split.unrecorded,
            gone=split.gone_keys,
        )
        jobs = write_hf(table, chosen, run_dir, Path(args.to), card, force=args.force)
        rows = sum(job.rows for job in jobs)
        said = f"{counted(rows, 'row')} in {counted(len(jobs), 'job folder')}"
        shortfall = card.shortfall()
        if shortfall:
            notes.append(shortfall)
        if card.sandbox:
            notes.append(
                f"{counted(len(card.sandbox), 'prediction')} in it were made by the sandbox "
                "(the card says so; `batchrun verify` refuses them without --allow-sandbox)"
            )
    else:
        columns = table_columns(table, chosen)
        with output_stream(args.to) as stream:
            spool_in = None if stdout else Path(os.path.abspath(args.to)).parent
            count = write_export(table, chosen, stream, columns, args.format, spool_in)
        said = counted(count, "row")
        if split.unrecorded:
            not_started = counted(len(split.unrecorded), "planned prediction")
            notes.append(f"{not_started} not started, so not in it")
    where = shown_as(args.to) if stdout else shown_path(args.to)
    print(f"batchrun: wrote {said} to {where}", file=sys.stderr)
    note = split.note(args.all)
    for line in [*notes, *([note] if note else [])]:
        print(f"batchrun: {line}", file=sys.stderr)
    return ExitCode.OK
