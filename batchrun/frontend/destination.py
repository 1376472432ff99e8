"""Where a command's output goes: `-` is stdout, a special file is written in place, and a
regular file atomically. Every option that writes a file (`status --csv`, `export --to`, `report
--output`) goes through `output_stream`; the library writes to the stream it is handed. What
is written there, and on the terminal, is redacted on the way (`redacted`).

A regular file is written atomically (temp file + rename), so a reader never sees half of it.
That rename must never happen to `/dev/stdout`, a FIFO or a device: run as root, it replaced the
`/dev/stdout` link with a regular file. Those are opened and written directly, as `cat > FILE`
would.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from batchrun import safefs
from batchrun.errors import StorageError, secrets_in_use

STDOUT = "-"
# Text gathered before one write: with PYTHONUNBUFFERED=1 (common in containers) each write to
# stdout is a system call of its own, and a million JSON lines written one by one cost seconds.
WRITE_CHUNK = 64 * 1024


class RedactedStream:
    """A text stream whose every write is redacted first (`Redactor.document`, with the secrets
    in use at the time of the write): what a command prints, and every file it writes through
    `output_stream`, is a sink (docs/SECURITY.md).

    Writers here write whole lines, JSON strings or CSV rows at a time, so a secret is never
    split between two writes. Everything else (isatty, fileno, buffer) is the stream's own.
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(secrets_in_use().document(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def redacted(stream: IO[str]) -> IO[str]:
    """`stream`, its writes redacted of this process's secrets (`secrets_in_use`)."""
    if isinstance(stream, RedactedStream):
        return stream
    return cast(IO[str], RedactedStream(stream))


def is_special(path: Path) -> bool:
    """Whether `path` exists and is not a regular file (a FIFO, a device, /dev/stdout)."""
    try:
        mode = os.stat(path).st_mode  # follows links: /dev/stdout → /proc/self/fd/1 → a pipe
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def is_stdout(dest: str) -> bool:
    """Whether `dest` is this process's stdout: `-`, or a name for it such as /dev/stdout."""
    if dest == STDOUT:
        return True
    try:
        return is_special(Path(dest)) and os.path.samestat(
            os.stat(dest), os.fstat(sys.stdout.fileno())
        )
    except (OSError, ValueError):  # stdout without a descriptor (a test's capture)
        return False


def shown_as(dest: str) -> str:
    """How a message names the destination."""
    return "stdout" if dest == STDOUT else dest


@contextlib.contextmanager
def direct_stream(dest: str) -> Iterator[IO[str] | None]:
    """stdout for `-`, the opened file for a special file; None for a path to write atomically."""
    if dest == STDOUT:
        yield sys.stdout
        sys.stdout.flush()
        return
    path = Path(dest)
    if not is_special(path):
        yield None
        return
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as error:
        raise StorageError(f"cannot write {dest}: {error.strerror or error}") from None
    with handle:
        yield handle


def write_lines(lines: Iterable[str], stream: IO[str]) -> None:
    """Each of `lines` and a newline, written to `stream` in chunks of about WRITE_CHUNK."""
    chunk: list[str] = []
    size = 0
    for line in lines:
        chunk.append(line)
        size += len(line) + 1
        if size >= WRITE_CHUNK:
            chunk.append("")
            stream.write("\n".join(chunk))
            chunk, size = [], 0
    if chunk:
        chunk.append("")
        stream.write("\n".join(chunk))


@contextlib.contextmanager
def output_stream(dest: str) -> Iterator[IO[str]]:
    """The stream to write `dest`'s text to: stdout, the special file, or a regular file's
    atomic temporary (renamed into place when the block ends without an error)."""
    with direct_stream(dest) as stream:
        if stream is not None:
            yield redacted(stream)
            return
        # The user named `dest`; safefs still never writes through a link at its temporary.
        with safefs.atomic_text_writer(Path(dest), None) as handle:
            yield redacted(handle)
