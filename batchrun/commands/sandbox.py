"""`batchrun sandbox`: serve the Replicate-compatible emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from typing import Any

from batchrun.engine.signals import stop_signals_taken
from batchrun.errors import UsageError
from batchrun.frontend.options.sandbox import SandboxArgs
from batchrun.sandbox import Sandbox, SandboxConfig


def settings_from(args: SandboxArgs) -> dict[str, Any]:
    """The sandbox settings the command line asked for (unset options keep their defaults).

    `--set NAME=VALUE` reaches every other setting; VALUE is read as JSON when it can be
    (`0.5`, `true`, `["GET"]`), else taken as text (`600/min`).
    """
    # The options that map one to one onto sandbox settings.
    direct: dict[str, Any] = {
        "latency": args.latency,
        "jitter": args.jitter,
        "failure_rate": args.failure_rate,
        "error_rate": args.error_rate,
        "reset_rate": args.reset_rate,
        "rate_limit": args.rate_limit,
        "file_ttl": args.file_ttl,
        "seed": args.seed,
    }
    settings = {name: value for name, value in direct.items() if value is not None}
    if args.no_wait:
        settings["honor_wait"] = False
    for item in args.set:
        name, equals, text = item.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--set takes NAME=VALUE, got {item!r}")
        try:
            settings[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            settings[name.strip()] = text
    return settings


def _raise_open_file_limit() -> None:
    # Every held `Prefer: wait` request is an open socket; the default soft limit is often 1024.
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(args: SandboxArgs) -> int:
    """Serve until Ctrl-C (unless started with SIGINT ignored) or SIGTERM; exit 0."""
    config = SandboxConfig().updated(**settings_from(args))
    _raise_open_file_limit()
    stop = threading.Event()
    sandbox = Sandbox(
        config,
        host=args.host,
        port=args.port,
        second_origin=args.second_origin,
        access_log=args.access_log,
    ).start()
    # Uvicorn serves in a thread and installs no handler; these are the only ones.
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in stop_signals_taken()}
    try:
        print(
            f"batchrun sandbox: a Replicate-compatible API at {sandbox.base_url}; point batchrun "
            f"at it with --base-url {sandbox.base_url} and any token; Ctrl-C stops it",
            flush=True,
        )
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sandbox.stop()
    return 0
