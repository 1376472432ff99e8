"""`batchrun validate SPEC...`: what it was asked to check, and how."""

from __future__ import annotations

from typing import NamedTuple


class ValidateArgs(NamedTuple):
    """`batchrun validate SPEC...`

    A NamedTuple, where the other commands' records are frozen dataclasses: an offline
    `validate` imports no `dataclasses` (see `batchrun.spec`).
    """

    specs: tuple[str, ...]
    json: bool = False
    online: bool = False
    base_url: str | None = None
    token_env: str | None = None
    allow_spec_base_url: bool = False
    allow_outside: tuple[str, ...] = ()
    max_predictions: int | None = None
