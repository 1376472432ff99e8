"""`batchrun run SPEC`: run what the plan says is left; progress on stderr, a summary at the end.

With `--json`, stdout gets one JSON object on every exit: the summary (`summary_json`), or, when
an error stopped the command before it had one (a spec error, a refused token, Ctrl-C before the
run began), `{"ok": false, "error": ..., "exit_code": ...}`; the error's line still goes to
stderr, from `cli.py`, as without `--json`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from batchrun.commands.python_api import prepared_run
from batchrun.engine.runner import run
from batchrun.errors import BatchrunError, SpecError
from batchrun.exitcodes import ExitCode, exit_code_for
from batchrun.frontend.options.run import RunArgs
from batchrun.frontend.progress import error_lines, make_progress, summary_json, summary_lines
from batchrun.humanize import printable
from batchrun.spec.allow import Allowances
from batchrun.spec.load import load_spec


def main(args: RunArgs) -> int:
    """Run a spec; exit 0 when every planned prediction succeeded, 1 if not, 130 if stopped."""
    answered = False  # whether stdout has its JSON object (or the start of it) already
    try:
        spec = load_spec(args.spec, Allowances.of(args.allow_outside, args.max_predictions))
        progress = make_progress(args.progress, quiet=args.quiet, verbose=args.verbose)
        with prepared_run(args, spec=spec, handle_signals=True) as (spec, options):
            summary = run(spec, options, progress=progress)
        if args.json:
            answered = True
            json.dump(summary_json(summary), sys.stdout, indent=2)
            print()
        elif not args.quiet:
            print("\n".join(summary_lines(summary)), file=sys.stderr)
        elif not summary.interrupted:
            # -q hides progress, notes and the summary, never what kept the run from succeeding.
            for line in error_lines(summary):
                print(line, file=sys.stderr)
    except (BatchrunError, KeyboardInterrupt) as error:
        if args.json and not answered:
            _print_json(error_json(error))
        raise
    except Exception as error:  # a bug: cli.py says so on stderr; stdout still gets its object
        if args.json and not answered:
            text = f"{type(error).__name__}: {error}"
            _print_json(
                {
                    "ok": False,
                    "interrupted": False,
                    "error": f"internal error: {printable(text)}",
                    "exit_code": int(ExitCode.FAILED),
                }
            )
        raise
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.ok else ExitCode.FAILED


def error_json(error: BatchrunError | KeyboardInterrupt) -> dict[str, Any]:
    """What `run --json` prints when an error (or Ctrl-C) stopped it before its summary."""
    if isinstance(error, KeyboardInterrupt):
        return {
            "ok": False,
            "interrupted": True,
            "error": "interrupted before the run began; nothing was sent",
            "exit_code": int(ExitCode.INTERRUPTED),
        }
    data: dict[str, Any] = {
        "ok": False,
        "interrupted": False,
        "error": printable(str(error)),
        "exit_code": int(exit_code_for(error)),
    }
    if isinstance(error, SpecError):
        count = len(error.issues)
        data["error"] = f"{count} error{'s' if count != 1 else ''} in the spec; nothing was sent"
        data["issues"] = [str(issue) for issue in error.issues]
    return data


def _print_json(data: dict[str, Any]) -> None:
    json.dump(data, sys.stdout, indent=2)
    print()
