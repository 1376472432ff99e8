"""`batchrun export RUN_OR_SPEC --format jsonl|csv|hf --to PATH [--all]`: a run as a dataset.

One row per prediction of the current spec (see batchrun/report/export.py for the columns);
with `--all`, the recorded predictions the spec no longer plans too. `--to -` writes JSON Lines
or CSV to stdout; `hf` writes a folder the Hugging Face `datasets` library loads as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

from batchrun._version import __version__
from batchrun.commands._runs import run_and_spec
from batchrun.commands.options import ExportArgs
from batchrun.errors import UsageError
from batchrun.exitcodes import ExitCode
from batchrun.humanize import counted, shown_path
from batchrun.manifest.reader import load_records
from batchrun.manifest.scope import scope, spec_of_run
from batchrun.report.export import Card, export_row, write_csv, write_hf, write_jsonl


def main(args: ExportArgs) -> int:
    """Write the export and say on stderr what went in and what was left out."""
    run_dir, spec = run_and_spec(args.target)
    headers, by_key = load_records(run_dir)
    split = scope(by_key.values(), spec or spec_of_run(headers))
    records = split.chosen(args.all)
    stdout = args.to == "-"
    if args.format == "hf":
        if stdout:
            raise UsageError("--format hf writes a folder; --to - (stdout) takes jsonl or csv")
        name = split.spec.name if split.spec else run_dir.name
        shown = split.spec.display_path or shown_path(split.spec.path) if split.spec else None
        card = Card(name=name, spec=shown, batchrun_version=__version__)
        jobs = write_hf(records, run_dir, Path(args.to), card)
        rows = sum(job.rows for job in jobs)
        said = f"{counted(rows, 'row')} in {counted(len(jobs), 'job folder')}"
        left = sum(card.left_out.values())
        if left:
            said += f" ({left:,} not succeeded or missing files, left out)"
    else:
        rows_out = [export_row(record) for record in records]
        write = write_jsonl if args.format == "jsonl" else write_csv
        count = write(rows_out, None if stdout else Path(args.to))
        said = counted(count, "row")
    where = "stdout" if stdout else shown_path(args.to)
    print(f"batchrun: wrote {said} to {where}", file=sys.stderr)
    note = split.note(args.all)
    if note:
        print(f"batchrun: {note}", file=sys.stderr)
    return ExitCode.OK
