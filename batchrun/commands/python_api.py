"""The Python API: the commands as functions, for notebooks and scripts.

`batchrun.plan`, `batchrun.run`, `batchrun.arun`, `batchrun.results` and `batchrun.verify`
(re-exported lazily by
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
from typing import TYPE_CHECKING, Any, Unpack

from batchrun import safefs
from batchrun.engine.choices import RunChoices
from batchrun.engine.runner import Progress, RunOptions, RunSummary, run_async
from batchrun.engine.runner import run as run_blocking
from batchrun.errors import refresh_secrets
from batchrun.frontend.options.run import RunArgs
from batchrun.frontend.progress import make_progress
from batchrun.frontend.run_target import api_endpoint, run_and_spec, sandbox_output
from batchrun.manifest.compare import iter_states
from batchrun.manifest.reader import load_records, manifest_paths
from batchrun.manifest.scope import scope, spec_of_run
from batchrun.planner.expand import parse_shard
from batchrun.planner.sample import Selection, iter_selected
from batchrun.spec.allow import Allowances
from batchrun.spec.load import Spec, load_spec

if TYPE_CHECKING:
    from batchrun import RunKeywords
    from batchrun.readout.verify import Verification

PathLike = str | os.PathLike[str]


def plan(
    spec: PathLike,
    *,
    out: PathLike | None = None,
    shard: str | None = None,
    sample: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Every planned prediction of `spec` (that shard, sample and limit select, as for `run`)
    as a dict (key, job, target, vars, input, repeat); with a manifest to compare with, each
    also has its `state` (new, done, in_flight, failed, download, stale). Sends nothing."""
    loaded = load_spec(spec)
    selection = Selection(parse_shard(shard) if shard else None, sample, limit)
    output = Path(os.path.abspath(out)) if out is not None else None
    if manifest_paths(output or loaded.output):
        states = iter_states(loaded, selection=selection, output=output)
        return [{**planned.to_json(), "state": state} for planned, state in states]
    return [planned.to_json() for planned in iter_selected(loaded, selection)]


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
    base_url: str | None = None,
    token: str | None = None,
    sandbox: bool = False,
    progress: bool = False,
    **choices: Any,
) -> tuple[RunArgs, str | None, Progress | None]:
    """The command's record for `run`'s keywords (the run options are checked by
    `RunChoices.parsed`, so a misspelled keyword is a TypeError), the token to use, and the
    display if progress was asked for."""
    RunChoices.parsed(choices)  # fails now, before anything is loaded, on a bad keyword
    args = RunArgs(
        spec=os.fspath(spec),
        base_url=base_url,
        sandbox=sandbox,
        quiet=not progress,  # without progress, nothing is said: not even the sandbox's address
        choices=choices,
    )
    return args, token, make_progress("auto") if progress else None


def results(run_or_spec: PathLike, *, all: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per recorded prediction of the current spec (its manifest record, newest state),
    with `paths`: its files' absolute paths. `all=True` adds those the spec no longer plans.

    Only paths inside the run folder (links followed) are given: a manifest someone edited to
    name `../../.ssh/id_rsa` must not hand a caller, who opens or uploads what it gets, a file
    from elsewhere (docs/SECURITY.md)."""
    run_dir, spec = run_and_spec(os.fspath(run_or_spec))
    headers, by_key = load_records(run_dir)
    redactor = refresh_secrets()  # a sink: a record may quote a server that echoed the token
    for record in scope(by_key.values(), spec or spec_of_run(headers)).chosen(all):
        row = record.to_json()
        paths = (Path(os.path.abspath(run_dir / file.path)) for file in record.files)
        row["paths"] = [str(path) for path in paths if safefs.is_inside(path, run_dir)]
        yield redactor.value(row)


def verify(
    run_or_spec_or_dataset: PathLike, *, allow_sandbox: bool = False, quick: bool = False
) -> Verification:
    """Whether a run (against its spec) or an exported dataset (against its record) is complete
    and unmodified, as `batchrun verify` proves it: `.ok`, `.problems` (each with `subject`,
    `kind`, `detail`) and `.to_json()`. Reads every byte unless `quick` (a run folder's stat
    index and kept table are trusted then, as `status` does); prints nothing."""
    target = Path(os.fspath(run_or_spec_or_dataset))
    refresh_secrets()  # a problem may quote a record's error: `printable` redacts it
    # Imported here: `run`, which imports this module, needs none of verify's readers.
    from batchrun.commands.verify import verify_target

    return verify_target(target, allow_sandbox=allow_sandbox, deep=not quick)


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
    refresh_secrets()  # what the environment holds now is redacted at every sink
    spec = spec or load_spec(args.spec, Allowances.of(args.allow_outside, args.max_predictions))
    choices = RunChoices.parsed(args.choices)
    if args.sandbox and choices.get("out") is None:
        choices["out"] = sandbox_output(spec)  # the sandbox's results in a folder of their own
    with api_endpoint(args, spec, token=token) as api:
        yield (
            spec,
            RunOptions(
                base_url=api.base_url,
                token=api.token,
                token_env=api.token_env,
                handle_signals=handle_signals,
                sandbox=True if args.sandbox else None,
                **choices,
            ),
        )


def _in_running_event_loop() -> bool:
    # The one asyncio call here: it only asks whether this thread is inside a running loop
    # (Jupyter's is asyncio); the run itself is anyio throughout.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
