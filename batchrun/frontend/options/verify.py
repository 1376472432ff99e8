"""`batchrun verify RUN_OR_SPEC_OR_DATASET`: what to prove, and how thoroughly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerifyArgs:
    """`batchrun verify RUN_OR_SPEC_OR_DATASET`"""

    target: str
    json: bool = False
    allow_sandbox: bool = False
    quick: bool = False
