"""The report's grids: records grouped into sections, rows, columns and cells, within limits.

A 100k-prediction run must not make a 1 GB page, so the gallery shows at most `Limits.items`
predictions in all, and each section at most `Limits.rows` rows, `Limits.cols` columns and
`Limits.stack` predictions per cell (repeats). Whatever is left out is counted, so the page can
say so.

Nor may a million-record run take a gigabyte to lay out: records are their indices in the
`Placings` (4 bytes each), grouped by section with a counting sort; within a section only the
rows and columns shown keep their records, and the rest is counted.
"""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from batchrun.report.layout import Layout, Placings, Value

Position = tuple[int, int]  # (row value's position, column value's); -1 when there is no such axis
NO_AXIS = -1


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of a run one page shows."""

    items: int = 2000
    sections: int = 200
    rows: int = 500
    cols: int = 30
    stack: int = 12  # per cell; without rows or columns, the one cell may hold `items`


DEFAULT_LIMITS = Limits()


@dataclass
class Section:
    """One grid: the section variables' values, its rows and columns, and each cell's records
    (their indices in the `Placings`)."""

    title: tuple[tuple[str, Value], ...]
    rows: list[Value]
    cols: list[Value]
    cells: dict[Position, list[int]]
    predictions: int  # in the whole section, shown or not
    hidden_rows: int = 0
    hidden_cols: int = 0
    hidden_items: int = 0  # predictions of shown cells beyond the stack limit

    def shown_cells(self, row: Value | None) -> list[tuple[Value | None, list[int]]]:
        """The cells of one row, left to right, each with its (capped) stack of records."""
        row_key = row.key if row else NO_AXIS
        cols: Sequence[Value | None] = self.cols or [None]
        return [(col, self.cells.get((row_key, col.key if col else NO_AXIS), [])) for col in cols]


@dataclass
class Gallery:
    """Every section shown, and how much was left out."""

    layout: Layout
    sections: list[Section] = field(default_factory=list)
    hidden_sections: int = 0
    hidden_predictions: int = 0  # in sections, rows and columns left out, and cut stacks
    shown_indices: list[int] = field(default_factory=list)  # of the `Placings`, as shown

    @property
    def shown(self) -> int:
        """How many predictions the page shows (each key is one record)."""
        return len(self.shown_indices)


def build_gallery(placings: Placings, layout: Layout, limits: Limits = DEFAULT_LIMITS) -> Gallery:
    """Group the records as the layout says, keeping within `limits`."""
    gallery = Gallery(layout)
    sections, starts, members = _by_section(placings, layout)
    rows = layout.values[layout.rows].positions() if layout.rows else None
    cols = layout.values[layout.cols].positions() if layout.cols else None
    for number, (start, end) in enumerate(pairwise(starts)):
        predictions = end - start
        budget = limits.items - gallery.shown
        if len(gallery.sections) >= limits.sections or budget <= 0:
            # Every section left is left out: counted at once, not one by one.
            gallery.hidden_sections += len(starts) - 1 - number
            gallery.hidden_predictions += starts[-1] - start
            break
        indices = members[start:end]
        title = tuple((name, layout.value(name, indices[0])) for name in sections)
        section = _section(placings, layout, title, indices, rows, cols, limits, budget)
        if not section.cells:  # not even its first row fits in what is left
            gallery.hidden_sections += 1
            gallery.hidden_predictions += predictions
            continue
        shown = [index for stack in section.cells.values() for index in stack]
        gallery.sections.append(section)
        gallery.shown_indices.extend(shown)
        gallery.hidden_predictions += predictions - len(shown)
    return gallery


def _by_section(
    placings: Placings, layout: Layout
) -> tuple[tuple[str, ...], array[int], array[int]]:
    """The records' indices grouped by section in display order, each section's in record
    order (a counting sort), and where each section starts (then the end of the last)."""
    names = layout.sections
    if not names:
        return names, array("q", [0, placings.count]), array("I", range(placings.count))
    radices = [len(layout.values[name]) for name in names]
    positions = [layout.values[name].positions() for name in names]
    # A section's number: its values' positions in mixed radix, so numbers sort as the
    # sections are shown. Each section met gets the next small id.
    ids: dict[int, int] = {}
    section_of = array("I", bytes(4 * placings.count))
    for index in range(placings.count):
        number = 0
        for radix, position in zip(radices, positions, strict=True):
            number = number * radix + position[index]
        section = ids.get(number)
        if section is None:
            section = ids[number] = len(ids)
        section_of[index] = section
    del positions
    counts = array("I", bytes(4 * len(ids)))
    for section in section_of:
        counts[section] += 1
    starts = array("q", [0])
    next_at = array("I", bytes(4 * len(ids)))
    for number in sorted(ids):
        next_at[ids[number]] = starts[-1]
        starts.append(starts[-1] + counts[ids[number]])
    members = array("I", bytes(4 * placings.count))
    for index, section in enumerate(section_of):
        members[next_at[section]] = index
        next_at[section] += 1
    return names, starts, members


def _present(positions: Iterable[int], size: int, first: int) -> tuple[int, list[int]]:
    """How many distinct positions (of `size`) there are, and the `first` lowest of them."""
    seen = bytearray(size)
    for position in positions:
        seen[position] = 1
    lowest: list[int] = []
    at = seen.find(1)
    while at >= 0 and len(lowest) < first:
        lowest.append(at)
        at = seen.find(1, at + 1)
    return seen.count(1), lowest


def _section(
    placings: Placings,
    layout: Layout,
    title: tuple[tuple[str, Value], ...],
    indices: array[int],
    rows: array[int] | None,
    cols: array[int] | None,
    limits: Limits,
    budget: int,
) -> Section:
    all_rows, row_keys = 0, [NO_AXIS]
    if layout.rows and rows is not None:
        size = len(layout.values[layout.rows])
        all_rows, row_keys = _present((rows[i] for i in indices), size, limits.rows)
    all_cols, col_keys, shown_cols = 0, [NO_AXIS], []
    if layout.cols and cols is not None:
        size = len(layout.values[layout.cols])
        all_cols, col_keys = _present((cols[i] for i in indices), size, limits.cols)
        shown_cols = [layout.values[layout.cols][key] for key in col_keys]
    hidden_cols = all_cols - len(shown_cols)
    section = Section(title, [], shown_cols, {}, len(indices), hidden_cols=hidden_cols)
    # The records of the cells that may be shown: the first rows, the shown columns.
    wanted_rows, wanted_cols = set(row_keys), set(col_keys)
    stacks: dict[Position, array[int]] = {}
    for index in indices:
        row = rows[index] if rows is not None else NO_AXIS
        col = cols[index] if cols is not None else NO_AXIS
        if row in wanted_rows and col in wanted_cols:
            stack = stacks.get((row, col))
            if stack is None:
                stack = stacks[(row, col)] = array("I")
            stack.append(index)
    stack_limit = limits.stack if layout.rows or layout.cols else limits.items
    for row_key in row_keys:
        cells = {
            (row_key, col): stacks[(row_key, col)] for col in col_keys if (row_key, col) in stacks
        }
        shown = sum(min(len(stack), stack_limit) for stack in cells.values())
        if len(section.rows) >= limits.rows or shown > budget:
            break
        budget -= shown
        if layout.rows:
            section.rows.append(layout.values[layout.rows][row_key])
        for position, stack in cells.items():
            # In repeat order; a cut stack keeps its first.
            section.cells[position] = heapq.nsmallest(stack_limit, stack, key=placings.order)
            section.hidden_items += max(len(stack) - stack_limit, 0)
    section.hidden_rows = all_rows - len(section.rows)
    return section
