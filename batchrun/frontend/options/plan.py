"""`batchrun plan SPEC`: what it was asked to show, and against which run folder or revision."""

from __future__ import annotations

from dataclasses import dataclass


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
