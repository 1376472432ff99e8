"""`batchrun validate SPEC...`: schema and meaning checks, every row expanded, nothing sent.

A value file given instead of a spec (`prompts.csv`: the pre-commit hook passes what is staged)
checks the specs that read it (batchrun/spec/readers.py).

Errors go to stderr, one per line as `file:line:col: path: message`; each good spec gets one
`SPEC: ok (N predictions in M jobs)` line on stdout. Exit 0 when every spec is fine, else 2.
With `--json`, one JSON document on stdout says the same: each spec, its counts or its errors
with their places.
With `--online`, a spec that passes is also checked against the API, as `run` does before its
first create: its targets exist, and its inputs fit each model's published schema.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from batchrun.errors import SpecError, SpecIssue
from batchrun.exitcodes import ExitCode
from batchrun.frontend.options.validate import ValidateArgs
from batchrun.frontend.run_target import endpoint_of
from batchrun.humanize import counted, shown_path
from batchrun.planner.expand import check_plan
from batchrun.spec.allow import Allowances
from batchrun.spec.load import load_spec
from batchrun.spec.readers import is_spec_path, specs_reading


def main(args: ValidateArgs) -> int:
    """Check each spec in turn; report all of their problems."""
    failed = False
    results: list[dict[str, Any]] = []
    for path in _specs(args.specs, quiet=args.json):
        shown = shown_path(path)
        issues: tuple[SpecIssue, ...]
        try:
            spec = load_spec(path, Allowances.of(args.allow_outside, args.max_predictions))
            checked = check_plan(spec)
        except SpecError as error:
            issues = error.issues
        else:
            issues = checked.issues
            if args.online and not issues:
                # Here, not at the top: offline, `validate` never loads the HTTP stack.
                from batchrun.frontend.online_check import online_check

                issues = tuple(sorted(online_check(spec, args).issues))
        if issues:
            failed = True
            results.append({"spec": shown, "ok": False, "errors": [_issue(i) for i in issues]})
            if args.json:
                continue
            for issue in issues:
                print(issue, file=sys.stderr)
            print(f"{shown}: {counted(len(issues), 'error')}", file=sys.stderr)
        else:
            # Where a run would send the token, and which variable it reads (docs/SECURITY.md).
            endpoint = endpoint_of(spec)
            api = endpoint.describe()
            results.append(
                {
                    "spec": shown,
                    "ok": True,
                    "predictions": checked.total,
                    "jobs": len(spec.jobs),
                    "api": endpoint.base_url,
                    "token_env": endpoint.token_env,
                    "run_refuses": endpoint.refused,
                }
            )
            if args.json:
                continue
            jobs = counted(len(spec.jobs), "job")
            print(f"{shown}: ok ({counted(checked.total, 'prediction')} in {jobs}); API {api}")
            if endpoint.refused:
                print(f"  run refuses until allowed: {endpoint.refused}")
    if args.json:
        json.dump({"ok": not failed, "specs": results}, sys.stdout, indent=2, ensure_ascii=False)
        print()
    return ExitCode.USAGE if failed else ExitCode.OK


def _specs(given: tuple[str, ...], *, quiet: bool) -> list[str]:
    """The specs to check: those given, and for a value file given, the specs that read it."""
    specs: dict[str, None] = {}
    for path in given:
        if is_spec_path(path) or not os.path.isfile(path):
            specs[path] = None
            continue
        readers = [os.path.relpath(spec) for spec in specs_reading(path)]
        if not quiet:
            said = f"read by {', '.join(readers)}" if readers else "no spec reads it"
            print(f"{shown_path(path)}: a value file, {said}")
        specs.update(dict.fromkeys(readers))
    return list(specs)


def _issue(issue: SpecIssue) -> dict[str, Any]:
    return {
        "file": issue.file,
        "line": issue.line,
        "column": issue.col,
        "path": issue.path,
        "message": issue.message,
    }
