"""`batchrun export RUN_OR_SPEC --format F --to PATH`: which run, as what, and where."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExportArgs:
    """`batchrun export RUN_OR_SPEC --format F --to PATH`"""

    target: str
    format: str
    to: str
    all: bool = False
    force: bool = False
