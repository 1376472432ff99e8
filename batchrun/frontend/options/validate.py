"""`batchrun validate SPEC...`: what it was asked to check, and how."""

from __future__ import annotations

from dataclasses import dataclass


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
