"""`batchrun run SPEC`: run what the plan says is left; progress on stderr, a summary at the end."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from batchrun.client import resolve_base_url
from batchrun.commands._display import BarProgress, summary_lines
from batchrun.errors import UsageError
from batchrun.plan import parse_shard
from batchrun.runner import RunOptions, resolve_token, run
from batchrun.spec import Rate, Spec, load_spec

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
SANDBOX_TOKEN = "sandbox-token"  # the emulator takes any token; this one is not a secret


def main(args: argparse.Namespace) -> int:
    """Run a spec; exit 0 when every planned prediction succeeded, 1 if not, 130 if stopped."""
    spec = load_spec(args.spec)
    rate = _rate(args.rate) if args.rate else None
    shard = parse_shard(args.shard) if args.shard else None
    progress = BarProgress(bar=sys.stderr.isatty(), quiet=args.quiet)
    with _api(args, spec) as (base_url, token):
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
            handle_signals=True,
        )
        summary = run(spec, options, progress=progress)
    if not args.quiet:
        print("\n".join(summary_lines(summary)), file=sys.stderr)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.ok else EXIT_FAILED


@contextlib.contextmanager
def _api(args: argparse.Namespace, spec: Spec) -> Iterator[tuple[str, str]]:
    """The base URL and token to use: the in-process emulator's with --sandbox."""
    if not args.sandbox:
        base_url = resolve_base_url(args.base_url, spec.base_url, os.environ)
        yield base_url, resolve_token(spec, os.environ)
        return
    if args.base_url:
        raise UsageError("--sandbox and --base-url exclude each other")
    from batchrun.sandbox import Sandbox

    with Sandbox() as sandbox:
        if not args.quiet:
            print(
                f"batchrun: running against the built-in sandbox at {sandbox.base_url}",
                file=sys.stderr,
            )
        yield sandbox.base_url, SANDBOX_TOKEN


def _rate(text: str) -> Rate:
    try:
        return Rate.parse(text)
    except ValueError as error:
        raise UsageError(f"--rate: {error}") from None


def _out(text: str | None) -> Path | None:
    return Path(text) if text else None
