"""CSV as a spreadsheet opens it: one writer, and one rule for a cell that would run as a formula.

`status --csv` and `export --format csv` both write through `write_csv`: a header, then one line
per row, nested values (lists, mappings) as compact JSON, None as an empty cell. A cell that a
spreadsheet would take for a formula gets a leading `'` (OWASP's advice on CSV injection): server
text (an error, an output) and a spec's values stay text when the file is opened.

The lines are those the csv module's writer writes (its `excel` dialect: a field in double
quotes where it holds a comma, a double quote or a line break; `\\r\\n` after each line), made
a batch of rows at a time, column by column: where a column's values are all text, numbers or
None, one look at the whole column finds whether any cell needs a `'` or a field quotes, instead
of a Python call a value (an export may write a million rows of some twenty values each).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import IO, Any

from batchrun import jsontext

# A spreadsheet runs a cell that starts with one of these as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# json.dumps(value, ensure_ascii=False, separators=(",", ":")), its encoder made once.
_COMPACT_JSON = jsontext.encoder(separators=(",", ":"))
# Rows a write to the handle (each write is redacted, maybe a system call): about 100 kB.
WRITE_ROWS = 256
# The types of a column whose cells `cells` finds with no Python call a value.
_NONE = type(None)
_TEXT = frozenset((str, _NONE))
_NUMBERS = frozenset((int, float, _NONE))
_LIST = frozenset((list,))
_FORMULA_MARKS = tuple("\n" + start for start in FORMULA_STARTS)


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


def field(text: str) -> str:
    """A cell's text as a field of a CSV line, as the csv module's writer (its `excel` dialect)
    writes it: in double quotes, each one inside doubled, where the text holds a comma, a double
    quote or a line break; else as it is."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def cells(values: Sequence[Any]) -> list[str]:
    """`cell` of each value of a column (one value a row): the same texts, with no Python call a
    value where the column's values are all text or None (or all numbers or None), or all empty
    lists; a column of other values (mappings, lists, booleans) takes `cell` one by one."""
    kinds = set(map(type, values))
    texts: list[str]
    if kinds <= _TEXT:
        texts = (
            ["" if value is None else value for value in values] if _NONE in kinds else [*values]
        )
    elif kinds <= _NUMBERS:
        # repr is what int.__repr__ and float.__repr__ write for these exact types; an infinity
        # or NaN (JSON's words for them differ) takes `cell`, as any value of another type.
        texts = ["" if value is None else repr(value) for value in values]
        if "n" in "".join(texts):
            return list(map(cell, values))
    elif kinds == _LIST and not any(values):
        return ["[]"] * len(values)
    else:
        return list(map(cell, values))
    # Each text's start follows a line break here: one look at them all finds a formula's.
    joined = "\n" + "\n".join(texts)
    if any(mark in joined for mark in _FORMULA_MARKS):
        return ["'" + text if text.startswith(FORMULA_STARTS) else text for text in texts]
    return texts


def fields(texts: list[str]) -> list[str]:
    """`field` of each text of a column: where none needs quotes, one look at them all says so."""
    joined = "".join(texts)
    if '"' in joined or "," in joined or "\n" in joined or "\r" in joined:
        return list(map(field, texts))
    return texts


def lines(rows: Sequence[Sequence[Any]]) -> str:
    """The rows as CSV lines, each as `csv.writer(...).writerow(map(cell, row))` writes it:
    column by column (`cells`, `fields`), then a comma between the fields of a row and `\\r\\n`
    after it; a row of one empty field is `""` (else it would read back as no field at all)."""
    widths = set(map(len, rows))
    if len(widths) > 1:  # rows of unlike lengths: one at a time
        return "".join(lines([row]) for row in rows)
    if not rows or not widths.pop():
        return "\r\n" * len(rows)
    columns = [fields(cells(column)) for column in zip(*rows, strict=True)]
    if len(columns) == 1:
        columns[0] = [text or '""' for text in columns[0]]
    return "\r\n".join(map(",".join, zip(*columns, strict=True))) + "\r\n"


def write_csv(handle: IO[str], header: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> int:
    """Write the header (None: none, the rows go on from rows written before) and the rows
    (`lines`); return the row count. The lines are written a batch of whole rows at a time."""
    if header is not None:
        # Header cells too: a variable's name is the spec's text, `=HYPERLINK(...)` included.
        handle.write(lines([header]))
    count = 0
    it = iter(rows)
    while batch := list(islice(it, WRITE_ROWS)):
        handle.write(lines(batch))
        count += len(batch)
    return count
