"""Journal lines read back by offset, a window of a journal at a time, and parsed together."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from batchrun.errors import ManifestError

# How much of a journal one read brings in while records are read back in order: lines close
# together cost one read between them.
READ_WINDOW = 1 << 20
LINE_READ = 1 << 13  # a line read alone: most records are under 8 kB


def parse_together(raws: list[bytes]) -> list[Any]:
    """Each line's JSON value, the lines parsed as one array: one call, and each field name
    made once for all of them. Where that does not give one value a line (a line that is not
    one value, or does not parse), None for each, for `line_read_back` to read alone."""
    try:
        parsed = json.loads(b"[" + b",".join(raws) + b"]")
    except ValueError:
        return [None] * len(raws)
    return parsed if len(parsed) == len(raws) else [None] * len(raws)


class Lines:
    """Lines of journals read back by offset: a window of each journal is kept, so lines read
    in the order they were written cost one read per `READ_WINDOW`; one far away costs one."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.handles: dict[int, int] = {}
        self.windows: dict[int, tuple[int, bytes]] = {}

    def __enter__(self) -> Lines:
        return self

    def __exit__(self, *_: object) -> None:
        for handle in self.handles.values():
            os.close(handle)

    def line(self, source: int, offset: int, length: int) -> bytes:
        """The `length` bytes of the line at `offset` of journal `source`."""
        start, data = self.windows.get(source, (0, b""))
        at = offset - start
        if at >= 0 and at + length <= len(data):
            return data[at : at + length]
        ahead = start <= offset < start + len(data) + READ_WINDOW
        # Reading on (the next lines, in the order they were written): a new window. A line
        # far away (a retry's, written later) is read alone, and the window stays.
        size = max(length, READ_WINDOW if ahead or not data else LINE_READ)
        data = self._read(source, offset, size)
        if ahead or source not in self.windows:
            self.windows[source] = (offset, data)
        return data[:length]

    def _read(self, source: int, offset: int, size: int) -> bytes:
        handle = self.handles.get(source)
        if handle is None:
            try:
                handle = self.handles[source] = os.open(self.paths[source], os.O_RDONLY)
            except OSError as error:
                path = self.paths[source]
                raise ManifestError(f"cannot read {path} again: {error.strerror}") from None
        return os.pread(handle, size, offset)
