"""`validate --online` and `plan --online`: the pre-flight `run` makes, on request."""

from __future__ import annotations

import os
import sys

import anyio

from batchrun.api.client import Client
from batchrun.api.endpoint import resolve_endpoint
from batchrun.engine.preflight import PreflightResult, preflight
from batchrun.engine.runner import resolve_token
from batchrun.planner.lock import read_lock
from batchrun.spec.load import Spec


def online_check(spec: Spec, base_url: str | None) -> PreflightResult:
    """Ask the API about every target of the spec and check every input; print the notes."""
    # It sends the token like `run` does, so the same rules decide where (docs/SECURITY.md).
    endpoint = resolve_endpoint(
        spec_base_url=spec.base_url,
        spec_token_env=spec.token_env,
        env=os.environ,
        base_url=base_url,
    ).checked()
    token = resolve_token(spec, os.environ, endpoint.token_env)

    async def ask() -> PreflightResult:
        async with Client(endpoint.base_url, token, token_env=endpoint.token_env) as client:
            return await preflight(spec, client, lock=read_lock(spec.path))

    result = anyio.run(ask)
    for note in result.notes:
        print(note, file=sys.stderr)
    return result
