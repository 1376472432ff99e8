"""batchrun: run large batches of Replicate predictions from reviewed YAML specs.

The Python API (see the README): `plan`, `run`, `arun`, `results` and `verify` below. They
import the rest of batchrun when first called, so `import batchrun` (and `batchrun --help`)
stays quick; the code is in `batchrun/commands/python_api.py`, which `batchrun run` uses too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypedDict, Unpack

if TYPE_CHECKING:
    from collections.abc import Iterator

    from batchrun.commands.python_api import PathLike
    from batchrun.engine.runner import RunSummary
    from batchrun.readout.verify import Verification

from batchrun._version import __version__
from batchrun.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    BatchrunError,
    DownloadError,
    ExpiredURLError,
    InvalidRequestError,
    ManifestError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    SpecError,
    SpecIssue,
    StorageError,
    UsageError,
)

# The public API: the functions below, their keywords, and the errors they raise (the tree is
# drawn in `batchrun/errors.py`). Everything else is batchrun's own and may change.
__all__ = [
    "ApiConnectionError",
    "ApiError",
    "AuthenticationError",
    "BatchrunError",
    "DownloadError",
    "ExpiredURLError",
    "InvalidRequestError",
    "ManifestError",
    "NotFoundError",
    "OutcomeUnknownError",
    "RateLimitedError",
    "RunKeywords",
    "ServerError",
    "SpecError",
    "SpecIssue",
    "StorageError",
    "UsageError",
    "__version__",
    "arun",
    "plan",
    "results",
    "run",
    "verify",
]


class RunKeywords(TypedDict, total=False):
    """`batchrun run`'s options, as keyword arguments of `run` and `arun`: the fields of
    `batchrun.engine.choices.RunChoices` (their text form where the flag takes text), spelled
    again here for type checkers; tests/commands/test_cli_options.py keeps the two the same."""

    out: PathLike | None
    base_url: str | None
    token: str | None  # else $REPLICATE_API_TOKEN (or the spec's token_env)
    concurrency: int | None
    rate: str | None  # "600/min", "10/s"
    budget: float | None  # USD the run folder may spend, all runs together (docs/cost.md)
    timeout: str | float | None  # "5m", "90s" or seconds: cancel a prediction running longer
    limit: int | None
    retry_failed: bool
    rerun_stale: bool  # run again what succeeded by a version the lock no longer pins
    download: bool  # False is --no-download
    deep: bool  # hash every recorded file again (--deep)
    sandbox: bool
    shard: str | None  # "2/8"
    shard_rate: Literal["shared", "whole"]  # shared: each shard keeps to 1/N of the rate
    sample: int | None  # N predictions spread over the plan, the same N every time
    progress: bool  # False (the default): nothing is printed


def plan(
    spec: PathLike,
    *,
    out: PathLike | None = None,
    shard: str | None = None,
    sample: int | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Every planned prediction of `spec` (that shard, sample and limit select, as for `run`)
    as a dict; with a manifest, each with its `state`."""
    from batchrun.commands import python_api

    return python_api.plan(spec, out=out, shard=shard, sample=sample, limit=limit)


def run(spec: PathLike, **options: Unpack[RunKeywords]) -> RunSummary:
    """Run what the plan of `spec` says is left (blocking; fine inside a notebook's loop)."""
    from batchrun.commands import python_api

    return python_api.run(spec, **options)


async def arun(spec: PathLike, **options: Unpack[RunKeywords]) -> RunSummary:
    """`run`, awaited in the caller's event loop (asyncio or trio)."""
    from batchrun.commands import python_api

    return await python_api.arun(spec, **options)


def results(run_or_spec: PathLike, *, all: bool = False) -> Iterator[dict[str, Any]]:
    """One dict per recorded prediction of the current spec, with `paths` to its files."""
    from batchrun.commands import python_api

    return python_api.results(run_or_spec, all=all)


def verify(
    run_or_spec_or_dataset: PathLike, *, allow_sandbox: bool = False, quick: bool = False
) -> Verification:
    """Whether a run or an exported dataset is complete and unmodified (`.ok`, `.problems`)."""
    from batchrun.commands import python_api

    return python_api.verify(run_or_spec_or_dataset, allow_sandbox=allow_sandbox, quick=quick)
