"""`validate --online` and `plan --online`: the pre-flight `run` makes, on request."""

from __future__ import annotations

import os
import sys

import anyio

from batchrun.api.client import Client, resolve_base_url
from batchrun.engine.preflight import PreflightResult, preflight
from batchrun.engine.runner import resolve_token
from batchrun.planner.lock import read_lock
from batchrun.spec.load import Spec


def online_check(spec: Spec, base_url: str | None) -> PreflightResult:
    """Ask the API about every target of the spec and check every input; print the notes."""
    url = resolve_base_url(base_url, spec.base_url, os.environ)
    token = resolve_token(spec, os.environ)

    async def ask() -> PreflightResult:
        async with Client(url, token, token_env=spec.token_env) as client:
            return await preflight(spec, client, lock=read_lock(spec.path))

    result = anyio.run(ask)
    for note in result.notes:
        print(note, file=sys.stderr)
    return result
