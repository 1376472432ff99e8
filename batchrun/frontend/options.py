"""What each command was asked to do: one frozen record per command, built by `cli.py`.

The commands take these records, never an `argparse.Namespace`, so mypy checks every option a
command reads. A field's name is the argparse `dest` of its flag (`--allow-outside` is
`allow_outside`); `cli.py` fills each record from the parsed namespace by field name, and
tests/commands/test_cli_options.py checks that every flag of the parser has its field and
back. To add a flag: one `add_argument` line in the command's `_add_<command>` in `cli.py`, one
field here (with its default). A run option is declared in `engine/choices.py` instead: `run`'s
flags and `RunArgs.choices` follow from it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Literal

ProgressStyle = Literal["auto", "bar", "lines", "none"]


@dataclass(frozen=True)
class ValidateArgs:
    """`batchrun validate SPEC...`"""

    specs: tuple[str, ...]
    json: bool = False
    online: bool = False
    base_url: str | None = None
    token_env: str | None = None
    allow_spec_base_url: bool = False
    allow_outside: tuple[str, ...] = ()
    max_predictions: int | None = None


@dataclass(frozen=True)
class PlanArgs:
    """`batchrun plan SPEC`"""

    spec: str
    json: bool = False
    out: str | None = None
    shard: str | None = None
    sample: int | None = None
    limit: int | None = None
    diff: str | None = None
    markdown: bool = False
    online: bool = False
    base_url: str | None = None
    token_env: str | None = None
    allow_spec_base_url: bool = False
    allow_outside: tuple[str, ...] = ()
    max_predictions: int | None = None


@dataclass(frozen=True)
class RunArgs:
    """`batchrun run SPEC`; the run options given are in `choices` (engine/choices.py)."""

    spec: str
    base_url: str | None = None
    token_env: str | None = None
    allow_spec_base_url: bool = False
    sandbox: bool = False
    json: bool = False
    progress: ProgressStyle = "auto"
    quiet: bool = False
    verbose: bool = False
    allow_outside: tuple[str, ...] = ()
    max_predictions: int | None = None
    # The `RunChoices` fields given, by name, as typed (`--shard 2/8` is {"shard": "2/8"}).
    choices: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusArgs:
    """`batchrun status RUN_OR_SPEC`"""

    target: str
    json: bool = False
    csv: str | None = None
    all: bool = False
    deep: bool = False


@dataclass(frozen=True)
class ReportArgs:
    """`batchrun report RUN_OR_SPEC`"""

    target: str
    rows: str | None = None
    cols: str | None = None
    output: str | None = None
    all: bool = False
    # Files shown are embedded in report.html up to this many MB in all: a page of that size
    # still opens at once in a browser and fits an e-mail or a CI artifact; 0: always linked.
    embed_limit: float = 25.0
    compare: str | None = None  # another run folder, or a git revision of the spec


@dataclass(frozen=True)
class ExportArgs:
    """`batchrun export RUN_OR_SPEC --format F --to PATH`"""

    target: str
    format: str
    to: str
    all: bool = False
    force: bool = False


@dataclass(frozen=True)
class VerifyArgs:
    """`batchrun verify RUN_OR_SPEC_OR_DATASET`"""

    target: str
    json: bool = False
    allow_sandbox: bool = False
    quick: bool = False


@dataclass(frozen=True)
class LockArgs:
    """`batchrun lock SPEC`"""

    spec: str
    base_url: str | None = None
    token_env: str | None = None
    allow_spec_base_url: bool = False
    sandbox: bool = False
    json: bool = False
    allow_outside: tuple[str, ...] = ()


@dataclass(frozen=True)
class SandboxArgs:
    """`batchrun sandbox`; None leaves the emulator's own default."""

    host: str = "127.0.0.1"
    port: int = 8765
    latency: float | None = None
    jitter: float | None = None
    failure_rate: float | None = None
    error_rate: float | None = None
    reset_rate: float | None = None
    rate_limit: str | None = None
    no_wait: bool = False
    file_ttl: float | None = None
    seed: int | None = None
    set: tuple[str, ...] = ()
    second_origin: bool = False
    access_log: bool = False


@dataclass(frozen=True)
class CompletionArgs:
    """`batchrun completion SHELL`: the script is written from the whole parser, which `cli.py`
    hands over (no command builds a parser)."""

    shell: str
    parser: argparse.ArgumentParser = field(compare=False, repr=False)


CommandArgs = (
    ValidateArgs
    | PlanArgs
    | RunArgs
    | StatusArgs
    | ReportArgs
    | ExportArgs
    | VerifyArgs
    | LockArgs
    | SandboxArgs
    | CompletionArgs
)

# The record each command's `main` takes, by the command's name on the command line.
ARGS_OF: dict[str, type[CommandArgs]] = {
    "validate": ValidateArgs,
    "plan": PlanArgs,
    "run": RunArgs,
    "status": StatusArgs,
    "export": ExportArgs,
    "verify": VerifyArgs,
    "report": ReportArgs,
    "lock": LockArgs,
    "sandbox": SandboxArgs,
    "completion": CompletionArgs,
}
