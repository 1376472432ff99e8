"""Numbers and paths as a person reads them: sizes, durations, paths from here."""

from __future__ import annotations

import os
import re

from batchrun.errors import secrets_in_use


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


# What a terminal acts on rather than shows: escape sequences (colours, cursor moves, window
# titles, OSC 8 links), other C0 and C1 controls (\r rewrites the line, \b erases), DEL, and the
# bidirectional overrides that reorder what is shown. Server text shown on a terminal loses them.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]?|\][^\x07\x1b]*(\x07|\x1b\\)?|.?)", re.DOTALL)
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
# Characters of one message from a server on a terminal: a failure's cause fits many times over;
# a 1 MB error page would bury everything after it. The manifest keeps the whole text.
MAX_SHOWN = 500


def printable(text: str, limit: int = MAX_SHOWN) -> str:
    """Text from elsewhere (a server, a manifest) as a terminal may show it: secrets redacted
    (before the cut, which could leave the start of one), escape sequences dropped, other
    control characters as one space, cut to `limit` characters with a note."""
    clean = _CONTROLS.sub(" ", _ESCAPES.sub("", secrets_in_use().text(text)))
    if len(clean) <= limit:
        return clean
    return f"{clean[:limit]}… ({len(clean):,} characters in all)"
