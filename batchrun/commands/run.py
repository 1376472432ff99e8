"""`batchrun run SPEC`: run what the plan says is left; progress on stderr, a summary at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from batchrun.commands._display import make_progress, summary_json, summary_lines
from batchrun.commands._runs import api_endpoint
from batchrun.commands.options import RunArgs
from batchrun.engine.runner import RunOptions, run
from batchrun.errors import UsageError
from batchrun.exitcodes import ExitCode
from batchrun.planner.expand import parse_shard
from batchrun.spec.load import Rate, load_spec


def main(args: RunArgs) -> int:
    """Run a spec; exit 0 when every planned prediction succeeded, 1 if not, 130 if stopped."""
    spec = load_spec(args.spec)
    rate = _rate(args.rate) if args.rate else None
    shard = parse_shard(args.shard) if args.shard else None
    progress = make_progress(args.progress, quiet=args.quiet, verbose=args.verbose)
    with api_endpoint(args, spec) as (base_url, token):
        options = RunOptions(
            base_url=base_url,
            token=token,
            out=_out(args.out),
            concurrency=args.concurrency,
            rate=rate,
            limit=args.limit,
            retry_failed=args.retry_failed,
            download=not args.no_download,
            shard=shard,
            shard_rate=args.shard_rate,
            sample=args.sample,
            handle_signals=True,
        )
        summary = run(spec, options, progress=progress)
    if args.json:
        json.dump(summary_json(summary), sys.stdout, indent=2)
        print()
    elif not args.quiet:
        print("\n".join(summary_lines(summary)), file=sys.stderr)
    if summary.interrupted:
        return ExitCode.INTERRUPTED
    return ExitCode.OK if summary.ok else ExitCode.FAILED


def _rate(text: str) -> Rate:
    try:
        return Rate.parse(text)
    except ValueError as error:
        raise UsageError(f"--rate: {error}") from None


def _out(text: str | None) -> Path | None:
    return Path(text) if text else None
