"""`batchrun verify RUN_OR_SPEC_OR_DATASET [--quick]`: is a run or dataset complete and unmodified?

A spec or a run folder: every prediction the spec plans succeeded, with every file as the
manifest records it. A dataset (`export --format hf`): every file as its export record lists
it, no file added, every planned prediction in it. Neither may hold a prediction the sandbox
made, unless `--allow-sandbox`. Exit 0 when all holds; 1 with one line per problem on stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from batchrun.errors import BatchrunError, UsageError
from batchrun.exitcodes import ExitCode
from batchrun.frontend.options.verify import VerifyArgs
from batchrun.frontend.run_target import sandbox_output
from batchrun.humanize import counted, human_bytes, printable, shown_path
from batchrun.manifest.reader import iter_journal, manifest_paths
from batchrun.manifest.scope import spec_of_run
from batchrun.readout.export.layout import EXPORT_RECORD
from batchrun.readout.verify import Verification, verify_dataset, verify_run
from batchrun.spec.load import Spec, load_spec


def main(args: VerifyArgs) -> int:
    """Verify, print each problem (or the JSON), and say on stderr what was proved."""
    target = Path(args.target)
    found = verify_target(target, allow_sandbox=args.allow_sandbox, deep=not args.quick)
    if args.json:
        json.dump(found.to_json(), sys.stdout, indent=2)
        print()
    else:
        for problem in found.problems:
            print(printable(problem.line()))
        print(f"batchrun: {summary(found)}", file=sys.stderr)
        hint = _sandbox_hint(target, found)
        if hint:
            print(f"batchrun: {hint}", file=sys.stderr)
    return ExitCode.OK if found.ok else ExitCode.FAILED


def verify_target(target: Path, *, allow_sandbox: bool, deep: bool) -> Verification:
    """A spec, a run folder or a dataset verified (`deep`: every byte read; the command's and
    the Python API's `verify`); UsageError for a target that is none of them."""
    if target.is_dir() and (target / EXPORT_RECORD).is_file():
        return verify_dataset(target, allow_sandbox=allow_sandbox)
    if target.is_file():
        spec = load_spec(target)
        return verify_run(spec, spec.output, allow_sandbox=allow_sandbox, deep=deep)
    if target.is_dir():
        if not manifest_paths(target):
            raise UsageError(
                f"{target}: neither a run folder (no manifest) nor a dataset (no {EXPORT_RECORD})"
            )
        return verify_run(_spec_of(target), target, allow_sandbox=allow_sandbox, deep=deep)
    raise UsageError(f"{target}: no such run folder, spec file or dataset")


def _sandbox_hint(target: Path, found: Verification) -> str | None:
    """Where a spec's runs are when only the sandbox ran it (`run --sandbox` writes beside)."""
    never_ran = found.problems and all(p.kind == "not_started" for p in found.problems)
    if found.kind != "run" or not never_ran or not target.is_file():
        return None
    elsewhere = sandbox_output(load_spec(target))
    if not manifest_paths(elsewhere):
        return None
    return (
        f"the sandbox's runs of this spec are in {shown_path(elsewhere)}; "
        f"verify that folder with --allow-sandbox to check them"
    )


def _spec_of(run_dir: Path) -> Spec:
    """The spec a run folder's manifest names: a run is verified against what it planned."""
    named = spec_of_run(_headers(run_dir))
    if named is None:
        raise UsageError(f"{run_dir}: no manifest names its spec; give it: batchrun verify SPEC")
    try:
        return load_spec(named)
    except BatchrunError:
        raise UsageError(
            f"{run_dir}: its spec {shown_path(named)} does not load, so what it plans is not "
            "known; fix it, or give the spec the run was made from: batchrun verify SPEC"
        ) from None


def _headers(run_dir: Path) -> list[dict[str, Any]]:
    """Each journal's first line only: verify_run reads the whole index once, not twice."""
    headers = []
    for path in manifest_paths(run_dir):
        for _, _, header in iter_journal(path):
            headers.append(header)
            break
    return headers


def summary(found: Verification) -> str:
    """One line: what was proved, or how many problems stand in the way."""
    where = shown_path(found.target)
    files = f"{counted(found.files, 'file')} ({human_bytes(found.bytes)})"
    if found.ok:
        proved = (
            f"{where}: verified: all {found.planned:,} planned predictions succeeded, "
            f"{files} as recorded"
        )
        if found.fingerprint:
            proved += f"; its {EXPORT_RECORD} has sha256 {found.fingerprint}"
        return proved
    return f"{where}: {counted(len(found.problems), 'problem')}; {files} checked"
