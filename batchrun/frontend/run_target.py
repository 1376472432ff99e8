"""What commands share: the API to talk to (or the sandbox), and the run folder a person meant."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from batchrun.api.endpoint import Endpoint, resolve_endpoint, resolve_token
from batchrun.errors import UsageError
from batchrun.humanize import shown_path
from batchrun.spec.load import Spec, load_spec

if TYPE_CHECKING:  # each command loads its own record (frontend/options/__init__.py)
    from batchrun.frontend.options.lock import LockArgs
    from batchrun.frontend.options.plan import PlanArgs
    from batchrun.frontend.options.run import RunArgs
    from batchrun.frontend.options.validate import ValidateArgs

SANDBOX_TOKEN = "sandbox-token"  # the emulator takes any token; this one is not a secret
# `run --sandbox` without --out writes beside the spec's own run folder, to NAME-sandbox: the
# sandbox's made-up results never share a folder with a real run's unless a person asks.
SANDBOX_SUFFIX = "-sandbox"


def sandbox_output(spec: Spec) -> Path:
    """The run folder of `run --sandbox` without --out: the spec's output, suffixed."""
    return spec.output.with_name(spec.output.name + SANDBOX_SUFFIX)


def run_dir_of(text: str) -> Path:
    """The run folder `text` names: a folder with manifests, or a spec file (its output)."""
    path = Path(text)
    if path.is_dir():
        return _with_manifest(path)
    if path.is_file():
        spec = load_spec(path)
        return _with_manifest(spec.output, spec)
    raise UsageError(f"{text}: no such run folder or spec file")


def run_and_spec(text: str, *, ran: bool = True) -> tuple[Path, Spec | None]:
    """The run folder `text` names, and the spec when `text` is a spec file. `ran`: the spec's
    folder must hold a manifest (`status` counts a spec's plan without one)."""
    path = Path(text)
    spec = load_spec(path) if path.is_file() else None
    if spec is None:
        return run_dir_of(text), None
    return (_with_manifest(spec.output, spec) if ran else spec.output), spec


def _with_manifest(folder: Path, spec: Spec | None = None) -> Path:
    if not _manifests_in(folder):
        hint = f" ({sandbox_hint(spec)})" if spec is not None and sandbox_hint(spec) else ""
        raise UsageError(f"{folder}: no manifest here; nothing has run yet{hint}")
    return folder


def _manifests_in(folder: Path) -> list[Path]:
    # Imported here: `validate` uses only `endpoint_of` of this module, and the manifest layer
    # it does not read was a tenth of its start-up (issue 22).
    from batchrun.manifest.reader import manifest_paths

    return manifest_paths(folder)


def sandbox_hint(spec: Spec) -> str:
    """Where the spec's sandbox runs are, when `run --sandbox` made some ("" if none)."""
    if not _manifests_in(sandbox_output(spec)):
        return ""
    return f"the sandbox's runs are in {shown_path(sandbox_output(spec))}"


def endpoint_of(
    spec: Spec, args: RunArgs | LockArgs | ValidateArgs | PlanArgs | None = None
) -> Endpoint:
    """The API and token variable a run of `spec` uses, from the command line, env and spec."""
    return resolve_endpoint(
        spec_base_url=spec.base_url,
        spec_token_env=spec.token_env,
        env=os.environ,
        base_url=args.base_url if args else None,
        token_env=args.token_env if args else None,
        allow_spec_base_url=args.allow_spec_base_url if args else False,
    )


def reach_lines(spec: Spec) -> list[str]:
    """What a run of `spec` would reach: the API and token variable (and what the command line
    must allow for them), for `plan` to show before anything is sent."""
    endpoint = endpoint_of(spec)
    lines = [f"api: {endpoint.describe()}"]
    if endpoint.refused:
        lines.append(f"  run refuses until allowed: {endpoint.refused}")
    for path in spec.outside:
        lines.append(f"outside the spec's folder (allowed): {path}")
    return lines


class ApiAccess(NamedTuple):
    """The API a command talks to: its base URL, the token, and the variable the token came
    from (None: handed over as `token=`, or the sandbox's), which hints name."""

    base_url: str
    token: str
    token_env: str | None


@contextlib.contextmanager
def api_endpoint(
    args: RunArgs | LockArgs, spec: Spec, *, token: str | None = None
) -> Iterator[ApiAccess]:
    """The API to use, with its token (`token`, else the environment's): the in-process
    emulator's with --sandbox."""
    if not args.sandbox:
        # Refused before anything is sent when a spec asks for a host or secret on its own.
        endpoint = endpoint_of(spec, args).checked()
        if token:
            yield ApiAccess(endpoint.base_url, token, None)
        else:
            found = resolve_token(spec, os.environ, endpoint.token_env)
            yield ApiAccess(endpoint.base_url, found, endpoint.token_env)
        return
    if args.base_url:
        raise UsageError("--sandbox and --base-url exclude each other")
    from batchrun.frontend.options.run import RunArgs
    from batchrun.sandbox import Sandbox

    with Sandbox() as sandbox:
        if not (isinstance(args, RunArgs) and args.quiet):
            print(
                f"batchrun: running against the built-in sandbox at {sandbox.base_url}",
                file=sys.stderr,
            )
        yield ApiAccess(sandbox.base_url, SANDBOX_TOKEN, None)
