"""The report page: a summary at the top, then one grid per section; inline CSS, no network.

The page reads without JavaScript. Its one inline script does nothing unless the page is opened
as `report.html#check`: then it loads every image at once (they are lazy otherwise) and, when
all have settled, writes on <body> how many loaded (`data-images-loaded`), how many did not
(`data-images-broken`), and each grid's shape as drawn, rows x columns of distinct cell
positions (`data-grid`). The browser test reads them back from the DOM.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from batchrun._version import __version__
from batchrun.cost import ESTIMATED, money
from batchrun.humanize import human_bytes, human_seconds
from batchrun.manifest.records import ALL_STATUSES, Record
from batchrun.readout.status import SANDBOX_NOTE, RunStatus
from batchrun.report.cells import ERROR_CHARS, Href, cut, is_text, render_item, status_class
from batchrun.report.filters import cell_about, cell_attributes, filter_bar
from batchrun.report.grid import Gallery, Section
from batchrun.report.layout import Layout, Value, label
from batchrun.report.style import CHECK_SCRIPT, FILTER_SCRIPT, STYLE

FAILURES_LISTED = 20


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The page shows what servers and manifests said, so it may run nothing and load nothing from
# elsewhere: only its own inline style and script (by hash), and media from the run folder
# ('self' when served, file: when opened from disk), never from another host (docs/SECURITY.md).
# The exact text of the page's one <style> and one <script>: the policy allows them by hash.
_STYLE_TEXT = "\n" + STYLE
_SCRIPT_TEXT = "\n" + FILTER_SCRIPT + CHECK_SCRIPT
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"style-src {sha256_source(_STYLE_TEXT)}",
        f"script-src {sha256_source(_SCRIPT_TEXT)}",
        "img-src 'self' file: data:",
        "media-src 'self' file:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
_TOO_MANY = "change --rows/--cols, or report a smaller run"


@dataclass(frozen=True)
class Page:
    """Everything the page shows."""

    name: str
    run_dir: str  # as the title shows it
    spec: str | None
    status: RunStatus
    gallery: Gallery
    href: Href
    generated: datetime
    scope_note: str | None = None  # recorded predictions the current spec no longer plans
    embed_note: str | None = None  # why the files are linked, not embedded
    shown: Mapping[int, Record] = field(default_factory=dict)  # by index in the gallery's cells
    statuses: Collection[str] = ()  # of the records the page counts (the filter's)

    @property
    def shown_keys(self) -> set[str]:
        """The keys of the predictions the page shows (a failure links to its cell)."""
        return {record.key for record in self.shown.values()}


def render_page(page: Page) -> str:
    """The whole HTML document."""
    title = f"{page.name} · {page.run_dir}"
    return "".join(
        (
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n',
            f"<title>{escape(title)} · batchrun report</title>\n",
            f"<style>{_STYLE_TEXT}</style>\n</head>\n<body>\n",
            _header(page),
            "<main>\n",
            "".join(_section(page, section) for section in page.gallery.sections),
            _nothing(page),
            "</main>\n",
            f"<script>{_SCRIPT_TEXT}</script>\n</body>\n</html>\n",
        )
    )


def _header(page: Page) -> str:
    status = page.status
    out = [
        "<header>\n",
        f'<h1>{escape(page.name)} <span class="path">{escape(page.run_dir)}</span></h1>\n',
        _meta(page),
        _counts(status),
        _jobs(status),
        _facts(status),
        _layout(page.gallery.layout),
        filter_bar(page.gallery.layout, page.statuses),
        _limits(page.gallery),
        _failures(status.failures, page.shown_keys),
        "</header>\n",
    ]
    return "".join(out)


def _meta(page: Page) -> str:
    # The file name reads well on any machine; the whole path is one hover away.
    spec = ""
    if page.spec:
        name = page.spec.replace("\\", "/").rsplit("/", 1)[-1]
        spec = f'spec <span title="{escape(page.spec)}">{escape(name)}</span> · '
    when = f"{page.generated:%Y-%m-%d %H:%M:%S} UTC"
    meta = f'<p class="meta">{spec}written {when} by batchrun {escape(__version__)}</p>\n'
    for note in (page.scope_note, page.embed_note):
        if note:
            meta += f'<p class="meta note">{escape(note)}</p>\n'
    return meta


def _chip(status: str, count: int) -> str:
    return f'<li class="chip {status_class(status)}"><b>{count:,}</b> {escape(status)}</li>'


def _counts(status: RunStatus) -> str:
    chips = [_chip(name, status.counts[name]) for name in ALL_STATUSES if status.counts[name]]
    chips.append(f'<li class="chip total"><b>{status.total:,}</b> predictions</li>')
    return f'<ul class="chips">{"".join(chips)}</ul>\n'


def _jobs(status: RunStatus) -> str:
    if len(status.jobs) < 2:
        return ""
    shown = [name for name in ALL_STATUSES if status.counts[name]]
    head = "".join(f"<th>{escape(name)}</th>" for name in shown)
    rows = []
    for job, counts in status.jobs.items():
        cells = "".join(f"<td>{counts[name]:,}</td>" for name in shown)
        rows.append(f"<tr><th>{escape(job)}</th>{cells}<td>{sum(counts.values()):,}</td></tr>")
    return (
        f'<table class="jobs"><thead><tr><th>job</th>{head}<th>total</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>\n"
    )


def _facts(status: RunStatus) -> str:
    files = f"{status.files:,} ({human_bytes(status.bytes)})"
    if status.missing_files:
        files += f", {status.missing_files:,} not downloaded"
    facts = [("files", files)]
    first, last = status.first_created, status.last_completed
    if first and last:
        span = max((last - first).total_seconds(), 0.0)
        when = f"{first:%Y-%m-%d %H:%M:%S} to {last:%H:%M:%S} UTC"
        facts.append(("wall time", f"{human_seconds(span)}, {when}"))
    facts.append(("predict time", f"{human_seconds(status.predict_time)} in all"))
    if status.priced:
        jobs = ", ".join(f"{job} {money(usd)}" for job, usd in status.job_spent.items())
        facts.append(("cost", f"{money(status.spent)} ({ESTIMATED}); by job: {jobs}"))
        for name, values in status.costliest().items():
            shown = ", ".join(f"{value} {money(usd)}" for value, usd in values)
            facts.append((f"cost by {name}", shown))
    if status.possible_duplicates:
        facts.append(("may have run twice", f"{status.possible_duplicates:,}"))
    facts.extend(("api", line) for line in status.api_lines())
    if status.sandbox:
        facts.append(("note", SANDBOX_NOTE))
    items = "".join(f"<dt>{escape(term)}</dt><dd>{escape(text)}</dd>" for term, text in facts)
    return f'<dl class="facts">{items}</dl>\n'


def _layout(layout: Layout) -> str:
    parts = []
    for what, names in (
        ("rows", [layout.rows] if layout.rows else []),
        ("columns", [layout.cols] if layout.cols else []),
        ("sections", layout.sections),
        ("captions", layout.captions),
    ):
        if names:
            shown = ", ".join(f"<b>{escape(name)}</b>" for name in names)
            parts.append(f"{what}: {shown}")
    choices = ", ".join(escape(name) for name in layout.values)  # the variables, then job
    grid = " · ".join(parts) or "one cell"
    return f'<p class="layout">{grid} <span class="hint">(--rows/--cols: {choices})</span></p>\n'


def _limits(gallery: Gallery) -> str:
    if not gallery.hidden_predictions:
        return ""
    total = gallery.shown + gallery.hidden_predictions
    text = f"This page shows {gallery.shown:,} of {total:,} predictions"
    if gallery.hidden_sections:
        noun = "section is" if gallery.hidden_sections == 1 else "sections are"
        text += f"; {gallery.hidden_sections:,} more {noun} left out"
    return f'<p class="limit">{escape(text)}: {_TOO_MANY}.</p>\n'


def _failures(failures: Sequence[Record], shown: set[str]) -> str:
    if not failures:
        return ""
    items = []
    for record in failures[:FAILURES_LISTED]:
        error = record.error or (
            f"{len(record.missing)} files not downloaded" if record.missing else record.status
        )
        key = escape(record.key)
        name = f'<a href="#k-{key}">{key}</a>' if record.key in shown else key
        where = f" ({escape(label(record.vars))})" if record.vars else ""
        items.append(
            f'<li><span class="badge {status_class(record.status)}">{escape(record.status)}</span> '
            f"{name} {escape(record.job)}{where}: {escape(cut(error, ERROR_CHARS // 5))}</li>"
        )
    more = len(failures) - FAILURES_LISTED
    if more > 0:
        items.append(f"<li>… and {more:,} more (batchrun status --json lists them all)</li>")
    summary = f"<summary>problems ({len(failures):,})</summary>"
    return f'<details class="failures" open>{summary}<ul>{"".join(items)}</ul></details>\n'


def _section(page: Page, section: Section) -> str:
    layout = page.gallery.layout
    heading = " · ".join(
        f'<span class="var">{escape(name)}</span> {escape(value.label)}'
        for name, value in section.title
    )
    out = ["<section>\n"]
    if heading:
        count = f"{section.predictions:,} prediction{'' if section.predictions == 1 else 's'}"
        out.append(f'<h2>{heading} <span class="count">{count}</span></h2>\n')
    out.append('<div class="scroll"><table class="grid">\n')
    if layout.cols:
        corner = _corner(layout) if layout.rows else ""
        heads = "".join(f'<th scope="col">{escape(col.label)}</th>' for col in section.cols)
        out.append(f"<thead><tr>{corner}{heads}</tr></thead>\n")
    out.append("<tbody>\n")
    rows: list[Value | None] = [*section.rows] or [None]
    for row in rows:
        out.append("<tr>")
        if row is not None:
            out.append(f'<th scope="row">{escape(row.label)}</th>')
        for _, stack in section.shown_cells(row):
            out.append(_cell(page, stack))
        out.append("</tr>\n")
    out.append("</tbody></table></div>\n")
    out.append(_section_limits(section))
    out.append("</section>\n")
    return "".join(out)


def _corner(layout: Layout) -> str:
    return (
        f'<th class="corner"><span>{escape(layout.cols or "")} →</span> '
        f"<span>{escape(layout.rows or '')} ↓</span></th>"
    )


def _cell(page: Page, stack: list[int]) -> str:
    if not stack:
        return '<td class="empty" title="no prediction for this combination"></td>'
    layout = page.gallery.layout
    records = [page.shown[index] for index in stack]
    repeats = len(stack) > 1 or any(record.repeat for record in records)
    items = []
    for index, record in zip(stack, records, strict=True):
        captions = [(name, layout.value(name, index)) for name in layout.captions]
        items.append(render_item(record, page.href, captions, repeats=repeats))
    # The stack's predictions differ only in their repeat: the first one speaks for the cell.
    wide = ' class="text"' if all(is_text(record) for record in records) else ""
    data = cell_attributes(layout, stack[0])
    about = cell_about(layout, records[0], stack[0])
    return f'<td{wide}{data}><div class="stack">{"".join(items)}</div>{about}</td>'


def _section_limits(section: Section) -> str:
    notes = []
    if section.hidden_rows:
        notes.append(f"{section.hidden_rows:,} more rows")
    if section.hidden_cols:
        notes.append(f"{section.hidden_cols:,} more columns")
    if section.hidden_items:
        notes.append(f"{section.hidden_items:,} more repeats")
    if not notes:
        return ""
    return f'<p class="limit">Not shown: {", ".join(notes)}; {_TOO_MANY}.</p>\n'


def _nothing(page: Page) -> str:
    if page.gallery.sections:
        return ""
    return '<p class="note">No predictions in this run yet.</p>\n'
