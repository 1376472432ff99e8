"""CSV as a spreadsheet opens it: one writer, and one rule for a cell that would run as a formula.

`status --csv` and `export --format csv` both write through `write_csv`: a header, then one line
per row, nested values (lists, mappings) as compact JSON, None as an empty cell. A cell that a
spreadsheet would take for a formula gets a leading `'` (OWASP's advice on CSV injection): server
text (an error, an output) and a spec's values stay text when the file is opened.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import IO, Any

# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# json.dumps(value, ensure_ascii=False, separators=(",", ":")), its encoder made once.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
# Text gathered before one write to the handle (each write is redacted, maybe a system call).
WRITE_CHUNK = 64 * 1024


def cell(value: Any) -> str:
    """One value as the text of its cell."""
    kind = type(value)
    text: str
    if kind is str:
        text = value
    elif value is None:
        return ""
    elif kind is int:  # what the JSON encoder writes for a number, without its generic walk
        text = int.__repr__(value)
    elif kind is float and math.isfinite(value):
        text = float.__repr__(value)
    else:
        text = value if isinstance(value, str) else _COMPACT_JSON(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def write_csv(handle: IO[str], header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> int:
    """Write the header (None: none, the rows go on from rows written before) and the rows
    (each value through `cell`); return the row count. The lines are gathered and written a
    chunk of whole rows at a time."""
    chunk = io.StringIO(newline="")
    writer = csv.writer(chunk)
    if header is not None:
        # Header cells too: a variable's name is the spec's text, `=HYPERLINK(...)` included.
        writer.writerow([cell(name) for name in header])
    count = 0
    for row in rows:
        writer.writerow(map(cell, row))
        count += 1
        if chunk.tell() >= WRITE_CHUNK:
            handle.write(chunk.getvalue())
            chunk.seek(0)
            chunk.truncate()
    handle.write(chunk.getvalue())
    return count
