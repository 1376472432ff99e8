"""`batchrun report RUN_OR_SPEC [--rows VAR] [--cols VAR] [--output FILE|-]`: the HTML gallery."""

from __future__ import annotations

from pathlib import Path

from batchrun import safefs
from batchrun.commands._output import direct_stream
from batchrun.commands._runs import run_and_spec
from batchrun.commands.options import ReportArgs
from batchrun.report.build import REPORT_NAME, build_report


def main(args: ReportArgs) -> int:
    """Write the report (atomically to a file) and print where it is; `--output -`: stdout."""
    run_dir, spec = run_and_spec(args.target)
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
        if stream is None:
            write_atomically(dest, page)
            print(dest)
        else:
            stream.write(page)
    return 0


def write_atomically(dest: Path, text: str) -> None:
    """Write `text` to `dest` through a temporary file, so a reader never sees half a page."""
    safefs.write_atomically(dest, text, None)
