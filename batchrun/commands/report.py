"""`batchrun report RUN_OR_SPEC [--rows VAR] [--cols VAR] [--output FILE|-]`: the HTML gallery.

`--compare OTHER` writes another page instead (RUN/compare.html): this run beside OTHER, another
run folder or a git revision of the spec (batchrun/report/pairing.py, compare_page.py).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from batchrun import safefs
from batchrun.errors import UsageError, secrets_in_use
from batchrun.frontend.destination import direct_stream
from batchrun.frontend.options.report import ReportArgs
from batchrun.frontend.run_target import run_and_spec, run_dir_of, sandbox_output
from batchrun.humanize import shown_path
from batchrun.planner.expand import iter_plan
from batchrun.report.build import REPORT_NAME, build_report
from batchrun.report.compare_page import render_comparison
from batchrun.report.pairing import Side, compare_sides, keys_side, run_side
from batchrun.spec.load import Spec
from batchrun.spec.revision import spec_at_revision


def main(args: ReportArgs) -> int:
    """Write the report (atomically to a file) and print where it is; `--output -`: stdout."""
    run_dir, spec = run_and_spec(args.target)
    if args.compare:
        return _compare(args, args.compare, run_dir, spec)
    output = args.output or str(run_dir / REPORT_NAME)
    with direct_stream(output) as stream:
        # Written to a stream, where the page lands is unknown (`> page.html`): its image links
        # are made relative to the current folder, the likeliest place for it.
        dest = Path(output) if stream is None else Path.cwd() / REPORT_NAME
        page = build_report(
            run_dir,
            dest=dest,
            rows=args.rows,
            cols=args.cols,
            current=spec,
            everything=args.all,
            embed_limit=int(args.embed_limit * 1024 * 1024),
        )
        _deliver(page, dest, stream)
    return 0


COMPARE_NAME = "compare.html"


def write_atomically(dest: Path, text: str) -> None:
    """Write `text` to `dest` through a temporary file, so a reader never sees half a page."""
    safefs.write_atomically(dest, text, None)


def _deliver(page: str, dest: Path, stream: IO[str] | None) -> None:
    """The page to its file (atomically, then its path on stdout) or to the stream asked for,
    the secrets of this process redacted in it (a record may quote a server)."""
    page = secrets_in_use().document(page)
    if stream is None:
        write_atomically(dest, page)
        print(dest)
    else:
        stream.write(page)


def _compare(args: ReportArgs, other: str, run_dir: Path, spec: Spec | None) -> int:
    """`--compare OTHER`: this run beside another run folder, or beside the spec's plan at a
    git revision, its predictions looked up where earlier runs of it left them."""
    new = run_side(run_dir, shown_path(run_dir), spec, everything=args.all)
    if Path(other).is_dir():
        old = run_side(run_dir_of(other), shown_path(other), everything=True)
    elif spec is None:
        raise UsageError(
            f"--compare {other}: not a run folder; to compare with a git revision, name the "
            "spec: `batchrun report SPEC --compare REV`"
        )
    else:
        old = _at_revision(spec, other, run_dir)
    output = args.output or str(run_dir / COMPARE_NAME)
    with direct_stream(output) as stream:
        dest = Path(output) if stream is None else Path.cwd() / COMPARE_NAME
        page = render_comparison(
            compare_sides(old, new),
            dest=dest,
            generated=datetime.now(UTC),
            embed_limit=int(args.embed_limit * 1024 * 1024),
        )
        _deliver(page, dest, stream)
    return 0


def _at_revision(spec: Spec, revision: str, run_dir: Path) -> Side:
    try:
        return _planned_at(spec, revision, run_dir)
    except UsageError as error:
        # spec/revision.py words its errors for `plan --diff`, its first user.
        said = str(error)
        if said.startswith("--diff"):
            said = "--compare" + said.removeprefix("--diff")
        raise UsageError(said) from None


def _planned_at(spec: Spec, revision: str, run_dir: Path) -> Side:
    with spec_at_revision(spec.path, revision, spec.allow) as base:
        if base.spec is None:
            why = base.problem or f"the spec is not in {revision}"
            raise UsageError(f"--compare {revision}: nothing to compare with: {why}")
        keys = [planned.key for planned in iter_plan(base.spec)]
        # Where runs of the spec as it was left their records: its output then, read in the
        # work tree (the revision's copy has no runs), then where this run is.
        then = spec.folder / os.path.relpath(base.spec.output, base.spec.folder)
    folders = [then, run_dir, sandbox_output(spec)]
    return keys_side(keys, folders, f"{revision} ({base.commit[:12]})")
