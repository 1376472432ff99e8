"""The exit codes of every command, in one place (docs/exit-codes.md lists them for users)."""

from __future__ import annotations

from enum import IntEnum

from batchrun.errors import ApiError, BatchrunError, SpecError, UsageError


class ExitCode(IntEnum):
    """What a `batchrun` process tells the shell."""

    OK = 0  # every planned prediction succeeded; or a check found nothing wrong
    FAILED = 1  # some failed, were canceled or aborted; or a disk, manifest or download failed
    USAGE = 2  # a usage or spec error: nothing was sent
    API = 3  # a fatal API error: authentication, an unreachable host
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: the next run picks everything up


def exit_code_for(error: BatchrunError) -> ExitCode:
    """The exit code of an error that stopped a command (`cli.py` prints it; `run --json` says
    it in its JSON object too)."""
    if isinstance(error, SpecError | UsageError):
        return ExitCode.USAGE
    if isinstance(error, ApiError):
        return ExitCode.API  # authentication, an unreachable host, an API that keeps failing
    return ExitCode.FAILED  # a manifest, a disk or a download that failed: work is kept
