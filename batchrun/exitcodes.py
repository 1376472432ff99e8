"""The exit codes of every command, in one place (docs/exit-codes.md lists them for users)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a `batchrun` process tells the shell."""

    OK = 0  # every planned prediction succeeded; or a check found nothing wrong
    FAILED = 1  # some failed, were canceled or aborted; or a disk, manifest or download failed
    USAGE = 2  # a usage or spec error: nothing was sent
    API = 3  # a fatal API error: authentication, an unreachable host
    INTERRUPTED = 130  # Ctrl-C or SIGTERM: the next run picks everything up
