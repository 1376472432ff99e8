"""`batchrun sandbox`: serve the Replicate-compatible emulator in the foreground until Ctrl-C."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from typing import Any

from batchrun.sandbox import Sandbox, SandboxConfig


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """The sandbox settings the command line asked for (unset options keep their defaults)."""
    settings: dict[str, Any] = {}
    for option, setting in (
        ("latency", "latency"),
        ("failure_rate", "failure_rate"),
        ("error_rate", "error_rate"),
        ("rate_limit", "rate_limit"),
        ("file_ttl", "file_ttl"),
    ):
        value = getattr(args, option, None)
        if value is not None:
            settings[setting] = value
    if getattr(args, "no_wait", False):
        settings["honor_wait"] = False
    return settings


def _raise_open_file_limit() -> None:
    # Every held `Prefer: wait` request is an open socket; the default soft limit is often 1024.
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or SIGTERM); exit 0."""
    config = SandboxConfig().updated(**settings_from(args))
    _raise_open_file_limit()
    stop = threading.Event()
    sandbox = Sandbox(config, host=args.host, port=args.port).start()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
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


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
