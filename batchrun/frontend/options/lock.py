"""`batchrun lock SPEC`: which spec, and the API to ask for its models' versions."""

from __future__ import annotations

from dataclasses import dataclass


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
