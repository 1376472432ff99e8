"""What each grid cell says about itself, and the filter bar that reads it.

Each cell shows the prompt and the variables of its prediction(s) in plain text (a reader of a
shared page should not need a tooltip), and carries each variable's value key as a data
attribute; each prediction carries its status. The filter bar (a form, hidden until the page's
script shows it, so the page reads the same without JavaScript) offers one menu per variable and
one for the status; the script in batchrun.report.style hides what does not match.
"""

from __future__ import annotations

from collections.abc import Collection
from html import escape

from batchrun.manifest.records import ALL_STATUSES, Record
from batchrun.report.cells import cut
from batchrun.report.layout import Layout

# The prompt as a cell shows it: two or three lines of a thumbnail's width. The tooltip and
# `batchrun export` have the whole input.
PROMPT_CHARS = 160
# A variable's value as a cell shows it.
VALUE_CHARS = 60
# A menu with more values than this is no help (a per-row text, a seed per prediction): such a
# variable gets no menu, and the cells still show its value.
MENU_VALUES = 60


def variable_names(layout: Layout) -> list[str]:
    """The variables a cell shows and the bar filters by: the layout's, `job` only if it varies."""
    return [name for name in layout.values if name != "job" or len(layout.values[name]) > 1]


def cell_attributes(layout: Layout, index: int) -> str:
    """The data attributes of the cell of the record at `index` (of the `Placings`): for
    variable number N, `data-vN` is the position of its value among the variable's values
    (short, and free of any character a value may hold)."""
    return "".join(
        f' data-v{number}="{layout.values[name].position_of(index)}"'
        for number, name in enumerate(variable_names(layout))
    )


def cell_about(layout: Layout, record: Record, index: int) -> str:
    """The prompt and every variable of a cell's prediction, as text under its picture."""
    parts = ['<div class="about">']
    prompt = record.input.get("prompt")
    if isinstance(prompt, str) and prompt:
        parts.append(f'<p class="prompt">{escape(cut(prompt, PROMPT_CHARS))}</p>')
    pieces = []
    for name in variable_names(layout):
        value = layout.value(name, index)
        if not value.missing:
            text = escape(cut(value.label, VALUE_CHARS))
            pieces.append(f"<span><i>{escape(name)}</i> {text}</span>")
    if pieces:
        parts.append(f'<p class="vars">{" · ".join(pieces)}</p>')
    parts.append("</div>")
    return "".join(parts) if len(parts) > 2 else ""


def filter_bar(layout: Layout, present: Collection[str]) -> str:
    """The filter form: a menu per variable (with few enough values) and one for the status
    (of those `present`: the statuses of the records the page counts)."""
    menus = []
    for number, name in enumerate(variable_names(layout)):
        values = layout.values[name]
        if len(values) < 2 or len(values) > MENU_VALUES:
            continue
        options = "".join(
            f'<option value="{position}">{escape(cut(value.label, VALUE_CHARS))}</option>'
            for position, value in enumerate(values)
        )
        menus.append(_menu(f"v{number}", name, options))
    statuses = [status for status in ALL_STATUSES if status in present]
    if len(statuses) > 1:
        options = "".join(f'<option value="{s}">{s}</option>' for s in statuses)
        menus.append(_menu("status", "status", options))
    if not menus:
        return ""
    return (
        f'<form class="filter" hidden>{"".join(menus)}'
        '<output class="hint" aria-live="polite"></output></form>\n'
    )


def _menu(field: str, title: str, options: str) -> str:
    return (
        f'<label>{escape(title)} <select name="{field}">'
        f'<option value="">all</option>{options}</select></label>'
    )
