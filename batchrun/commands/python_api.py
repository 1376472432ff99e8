"""The Python API: the commands as functions, for notebooks and scripts.

`batchrun.plan`, `batchrun.run`, `batchrun.arun` and `batchrun.results` (re-exported lazily by
`batchrun/__init__.py`) take the command line's options as keyword arguments and return data
instead of printing. `batchrun run` itself goes through `prepared_run` below, so the command line
is a thin layer over the same code. It lives beside the commands because `progress=True` draws
the command line's display, and only commands/ may write to a terminal.

`run` works from plain code and from inside a running event loop (a Jupyter cell): there it runs
in a worker thread with an event loop of its own, since a loop cannot be entered twice. In async
code, `await batchrun.arun(...)` runs in the caller's loop instead (asyncio or trio).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Unpack

from batchrun.commands._display import make_progress
from batchrun.commands._runs import api_endpoint, run_and_spec
from batchrun.commands.options import RunArgs
from batchrun.engine.runner import Progress, RunOptions, RunSummary, run_async
from batchrun.engine.runner import run as run_blocking
from batchrun.errors import UsageError
from batchrun.manifest.compare import iter_states
from batchrun.manifest.reader import load_records, manifest_paths
from batchrun.manifest.scope import scope, spec_of_run
from batchrun.planner.expand import iter_plan, parse_shard
from batchrun.spec.allow import Allowances
from batchrun.spec.load import Rate, Spec, load_spec

if TYPE_CHECKING:
    from batchrun import RunKeywords

PathLike = str | os.PathLike[str]


def plan(
    spec: PathLike, *, out: PathLike | None = None, shard: str | None = None
) -> list[dict[str, Any]]:
    """Every planned prediction of `spec` as a dict (key, job, target, vars, input, repeat);
    with a manifest to compare with, each also has its `state` (new, done, in_flight, failed,
    download, stale). Sends nothing to the API."""
    loaded = load_spec(spec)
    shard_ = parse_shard(shard) if shard else None
    output = Path(os.path.abspath(out)) if out is not None else None
    if manifest_paths(output or loaded.output):
        states = iter_states(loaded, shard=shard_, output=output)
        return [{**planned.to_json(), "state": state} for planned, state in states]
    return [planned.to_json() for planned in iter_plan(loaded, shard=shard_)]


def run(spec: PathLike, **options: Unpack[RunKeywords]) -> RunSummary:
    """Run what the plan of `spec` says is left, as `batchrun run` does; return its summary.

    The keywords are `batchrun run`'s options (`download=False` is `--no-download`); `token`
    overrides the environment's. `progress=True` shows progress on stderr as the command does.
    """
    args, token, display = _run_args(spec, **options)

    def blocking() -> RunSummary:
        with prepared_run(args, token=token) as (loaded, run_options):
            return run_blocking(loaded, run_options, progress=display)

    if _in_running_event_loop():
        # A notebook cell runs inside the kernel's event loop, which cannot run another inside
        # it: the run gets a thread and a loop of its own, and the cell waits for it.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batchrun") as pool:
            return pool.submit(blocking).result()
    return blocking()


async def arun(spec: PathLike, **options: Unpack[RunKeywords]) -> RunSummary:
    """`run`, awaited in the caller's event loop (asyncio or trio)."""
    args, token, display = _run_args(spec, **options)
    with prepared_run(args, token=token) as (loaded, run_options):
        return await run_async(loaded, run_options, progress=display)


def _run_args(
    spec: PathLike,
    *,
    out: PathLike | None = None,
    base_url: str | None = None,
    token: str | None = None,
    concurrency: int | None = None,
    rate: str | None = None,
    limit: int | None = None,
    retry_failed: bool = False,
    rerun_stale: bool = False,
    download: bool = True,
    sandbox: bool = False,
    shard: str | None = None,
    shard_rate: Literal["shared", "whole"] = "shared",
    sample: int | None = None,
    progress: bool = False,
) -> tuple[RunArgs, str | None, Progress | None]:
    """The command's record for `run`'s keywords (one explicit signature, so a misspelled
    keyword is a TypeError), the token to use, and the display if progress was asked for."""
    args = RunArgs(
        spec=os.fspath(spec),
        out=os.fspath(out) if out is not None else None,
        base_url=base_url,
        concurrency=concurrency,
        rate=rate,
        limit=limit,
        retry_failed=retry_failed,
        rerun_stale=rerun_stale,
        no_download=not download,
        sandbox=sandbox,
        shard=shard,
        shard_rate=shard_rate,
        sample=sample,
        quiet=not progress,  # without progress, nothing is said: not even the sandbox's address
    )
    return args, token, make_progress("auto") if progress else None


def results(run_or_spec: PathLike, *, all: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per recorded prediction of the current spec (its manifest record, newest state),
    with `paths`: its files' absolute paths. `all=True` adds those the spec no longer plans."""
    run_dir, spec = run_and_spec(os.fspath(run_or_spec))
    headers, by_key = load_records(run_dir)
    for record in scope(by_key.values(), spec or spec_of_run(headers)).chosen(all):
        row = record.to_json()
        row["paths"] = [str(run_dir / file.path) for file in record.files]
        yield row


@contextlib.contextmanager
def prepared_run(
    args: RunArgs,
    *,
    spec: Spec | None = None,
    token: str | None = None,
    handle_signals: bool = False,
) -> Iterator[tuple[Spec, RunOptions]]:
    """The spec (loaded from `args.spec` unless given) and the run options `args` ask for, with
    the API (or the sandbox) to talk to."""
    spec = spec or load_spec(args.spec, Allowances.of(args.allow_outside, args.max_predictions))
    rate = _rate(args.rate) if args.rate else None
    shard = parse_shard(args.shard) if args.shard else None
    with api_endpoint(args, spec, token=token) as (base_url, api_token):
        yield (
            spec,
            RunOptions(
                base_url=base_url,
                token=api_token,
                out=Path(args.out) if args.out else None,
                concurrency=args.concurrency,
                rate=rate,
                limit=args.limit,
                retry_failed=args.retry_failed,
                rerun_stale=args.rerun_stale,
                download=not args.no_download,
                shard=shard,
                shard_rate=args.shard_rate,
                sample=args.sample,
                handle_signals=handle_signals,
            ),
        )


def _rate(text: str) -> Rate:
    try:
        return Rate.parse(text)
    except ValueError as error:
        raise UsageError(f"--rate: {error}") from None


def _in_running_event_loop() -> bool:
    # The one asyncio call here: it only asks whether this thread is inside a running loop
    # (Jupyter's is asyncio); the run itself is anyio throughout.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
