"""The report's grids: records grouped into sections, rows, columns and cells, within limits.

A 100k-prediction run must not make a 1 GB page, so the gallery shows at most `Limits.items`
predictions in all, and each section at most `Limits.rows` rows, `Limits.cols` columns and
`Limits.stack` predictions per cell (repeats). Whatever is left out is counted, so the page can
say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from batchrun.manifest.records import Record
from batchrun.report.layout import Layout, Value

Position = tuple[str, str]  # (row value key, column value key); "" when there is no such axis


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
    """One grid: the section variables' values, its rows and columns, and each cell's records."""

    title: tuple[tuple[str, Value], ...]
    rows: list[Value]
    cols: list[Value]
    cells: dict[Position, list[Record]]
    predictions: int  # in the whole section, shown or not
    hidden_rows: int = 0
    hidden_cols: int = 0
    hidden_items: int = 0  # predictions of shown cells beyond the stack limit

    def shown_cells(self, row: Value | None) -> list[tuple[Value | None, list[Record]]]:
        """The cells of one row, left to right, each with its (capped) stack of records."""
        row_key = row.key if row else ""
        cols: Sequence[Value | None] = self.cols or [None]
        return [(col, self.cells.get((row_key, col.key if col else ""), [])) for col in cols]


@dataclass
class Gallery:
    """Every section shown, and how much was left out."""

    layout: Layout
    sections: list[Section] = field(default_factory=list)
    hidden_sections: int = 0
    hidden_predictions: int = 0  # in sections, rows and columns left out, and cut stacks
    shown_keys: set[str] = field(default_factory=set)
    index: dict[str, int] = field(default_factory=dict)  # key → position in `layout.cells`

    @property
    def shown(self) -> int:
        """How many predictions the page shows (each key is one record)."""
        return len(self.shown_keys)


def build_gallery(
    records: Sequence[Record], layout: Layout, limits: Limits = DEFAULT_LIMITS
) -> Gallery:
    """Group the records as the layout says, keeping within `limits`."""
    grouped = _group(records, layout)
    gallery = Gallery(layout, index={record.key: i for i, record in enumerate(records)})
    for title, cells in grouped:
        predictions = sum(len(stack) for stack in cells.values())
        budget = limits.items - gallery.shown
        if len(gallery.sections) >= limits.sections or budget <= 0:
            gallery.hidden_sections += 1
            gallery.hidden_predictions += predictions
            continue
        section = _section(layout, title, cells, predictions, limits, budget)
        if not section.cells:  # not even its first row fits in what is left
            gallery.hidden_sections += 1
            gallery.hidden_predictions += predictions
            continue
        shown = [r for stack in section.cells.values() for r in stack]
        gallery.sections.append(section)
        gallery.shown_keys.update(r.key for r in shown)
        gallery.hidden_predictions += predictions - len(shown)
    return gallery


def _group(
    records: Sequence[Record], layout: Layout
) -> list[tuple[tuple[tuple[str, Value], ...], dict[Position, list[Record]]]]:
    """Records by section (in display order), then by (row, column), each stack in repeat order."""
    order = {name: {v.key: i for i, v in enumerate(layout.values[name])} for name in layout.values}
    sections: dict[tuple[str, ...], dict[Position, list[Record]]] = {}
    titles: dict[tuple[str, ...], tuple[tuple[str, Value], ...]] = {}
    for index, record in enumerate(records):
        title = tuple((name, layout.cells[name][index]) for name in layout.sections)
        section_key = tuple(value.key for _, value in title)
        titles.setdefault(section_key, title)
        row = layout.cells[layout.rows][index].key if layout.rows else ""
        col = layout.cells[layout.cols][index].key if layout.cols else ""
        sections.setdefault(section_key, {}).setdefault((row, col), []).append(record)
    for cells in sections.values():
        for stack in cells.values():
            stack.sort(key=lambda r: (r.repeat, r.key))

    def position(section_key: tuple[str, ...]) -> tuple[int, ...]:
        pairs = zip(layout.sections, section_key, strict=True)
        return tuple(order[name][key] for name, key in pairs)

    return [(titles[key], sections[key]) for key in sorted(sections, key=position)]


def _section(
    layout: Layout,
    title: tuple[tuple[str, Value], ...],
    cells: dict[Position, list[Record]],
    predictions: int,
    limits: Limits,
    budget: int,
) -> Section:
    all_rows = layout.ordered(layout.rows, (r for r, _ in cells)) if layout.rows else []
    all_cols = layout.ordered(layout.cols, (c for _, c in cells)) if layout.cols else []
    cols = all_cols[: limits.cols]
    section = Section(title, [], cols, {}, predictions, hidden_cols=len(all_cols) - len(cols))
    col_keys = [c.key for c in cols] or [""]
    stack_limit = limits.stack if layout.rows or layout.cols else limits.items
    row_values: list[Value | None] = [*all_rows] or [None]
    for row in row_values:
        row_key = row.key if row else ""
        stacks = {
            (row_key, col): cells[(row_key, col)] for col in col_keys if (row_key, col) in cells
        }
        shown = sum(min(len(stack), stack_limit) for stack in stacks.values())
        if len(section.rows) >= limits.rows or shown > budget:
            break
        budget -= shown
        if row is not None:
            section.rows.append(row)
        for position, stack in stacks.items():
            section.cells[position] = stack[:stack_limit]
            section.hidden_items += max(len(stack) - stack_limit, 0)
    section.hidden_rows = len(all_rows) - len(section.rows)
    return section
