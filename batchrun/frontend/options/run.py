"""`batchrun run SPEC`: where to run, what to show, and the run options given."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ProgressStyle = Literal["auto", "bar", "lines", "none"]


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
