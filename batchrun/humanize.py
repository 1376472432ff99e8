"""Numbers and paths as a person reads them: sizes, durations, paths from here."""

from __future__ import annotations

import os


def counted(n: int, noun: str) -> str:
    """1 → '1 job', 3 → '3 jobs', 1200 → '1,200 jobs'."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def human_bytes(count: float) -> str:
    """1536 → '1.5 KiB': binary units, named as such (a KB is 1000 bytes, a KiB 1024)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"


def human_seconds(seconds: float) -> str:
    """75.2 → '1m 15s'."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as messages show it: relative to the current folder when it is inside it and
    that is shorter; otherwise as given (never `../..`, which says little about where it is)."""
    given = os.fspath(path)
    try:
        relative = os.path.relpath(os.path.abspath(given))
    except ValueError:  # another drive on Windows
        return given
    outside = relative == os.pardir or relative.startswith(os.pardir + os.sep)
    return relative if len(relative) < len(given) and not outside else given
