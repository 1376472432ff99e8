"""`validate --online` and `plan --online`: the pre-flight `run` makes, on request."""

from __future__ import annotations

import os
import sys

import anyio

from batchrun.api.client import Client
from batchrun.api.endpoint import resolve_token
from batchrun.engine.preflight import PreflightResult, preflight
from batchrun.frontend.options.plan import PlanArgs
from batchrun.frontend.options.validate import ValidateArgs
from batchrun.frontend.run_target import endpoint_of
from batchrun.planner.lock import read_lock
from batchrun.spec.load import Spec


def online_check(spec: Spec, args: ValidateArgs | PlanArgs) -> PreflightResult:
    """Ask the API about every target of the spec and check every input; print the notes."""
    # It sends the token like `run` does, so the same rules decide where (docs/SECURITY.md).
    endpoint = endpoint_of(spec, args).checked()
    token = resolve_token(spec, os.environ, endpoint.token_env)

    async def ask() -> PreflightResult:
        async with Client(endpoint.base_url, token, token_env=endpoint.token_env) as client:
            return await preflight(spec, client, lock=read_lock(spec.path))

    result = anyio.run(ask)
    for note in result.notes:
        print(note, file=sys.stderr)
    return result
