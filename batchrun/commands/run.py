"""`batchrun run SPEC`: run what the plan says is left; progress on stderr, a summary at the end."""

from __future__ import annotations

import json
import sys

from batchrun.commands._display import make_progress, summary_json, summary_lines
from batchrun.commands.options import RunArgs
from batchrun.commands.python_api import prepared_run
from batchrun.engine.runner import run
from batchrun.exitcodes import ExitCode
from batchrun.spec.allow import Allowances
from batchrun.spec.load import load_spec


def main(args: RunArgs) -> int:
    """Run a spec; exit 0 when every planned prediction succeeded, 1 if not, 130 if stopped."""
    spec = load_spec(args.spec, Allowances.of(args.allow_outside, args.max_predictions))
    progress = make_progress(args.progress, quiet=args.quiet, verbose=args.verbose)
    with prepared_run(args, spec=spec, handle_signals=True) as (spec, options):
        summary = run(spec, options, progress=progress)
    if args.json:
        json.dump(summary_json(summary), sys.stdout, indent=2)
        print()
    elif not args.quiet:
        print("\n".join(summary_lines(summary)), file=sys.stderr)
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.ok else ExitCode.FAILED
