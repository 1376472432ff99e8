"""`batchrun lock SPEC`: pin each `model: owner/name` to its current version in SPEC.lock."""

from __future__ import annotations

import json
import sys

import anyio

from batchrun.api.client import Client
from batchrun.engine.pins import resolve_pins
from batchrun.frontend.options.lock import LockArgs
from batchrun.frontend.run_target import ApiAccess, api_endpoint
from batchrun.humanize import shown_path
from batchrun.planner.lock import Pin, write_lock
from batchrun.spec.allow import Allowances
from batchrun.spec.load import Spec, load_spec


def main(args: LockArgs) -> int:
    """Resolve and write the lock file; print one line per model (or JSON with --json)."""
    spec = load_spec(args.spec, Allowances.of(args.allow_outside))
    with api_endpoint(args, spec) as api:
        pins = anyio.run(_resolve, spec, api)
    path = write_lock(spec, pins)
    if args.json:
        pinned = [{"model": p.model, "version": p.version, "reason": p.reason} for p in pins]
        json.dump({"lock": str(path), "pins": pinned}, sys.stdout, indent=2)
        print()
        return 0
    width = max((len(pin.model) for pin in pins), default=0)
    for pin in pins:
        said = f"pinned to {pin.version}" if pin.version else f"unpinned: {pin.reason}"
        print(f"  {pin.model.ljust(width)}  {said}")
    if not pins:
        print("  (no job names a model without a version: nothing to pin)")
    print(f"batchrun: wrote {shown_path(path)}")
    return 0


async def _resolve(spec: Spec, api: ApiAccess) -> list[Pin]:
    async with Client(api.base_url, api.token, token_env=api.token_env) as client:
        return await resolve_pins(spec, client)
