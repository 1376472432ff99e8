"""`batchrun status RUN_OR_SPEC`: which run folder, and how to show what it holds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusArgs:
    """`batchrun status RUN_OR_SPEC`"""

    target: str
    json: bool = False
    csv: str | None = None
    all: bool = False
    deep: bool = False
