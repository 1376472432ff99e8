"""The compare page: two runs' predictions side by side, as one self-contained HTML page.

For each pair (the same job, variables and repeat in both runs) the inputs that differ come
first, old → new, then the two results side by side (before: OTHER, after: RUN), and for text
outputs a word-level diff. Predictions only one run has are listed apart. Files are embedded as
`report` embeds them (within `embed_limit`), so the one page can be uploaded from CI as is.
Like the report it runs nothing and loads nothing from elsewhere: one inline style, allowed by
its hash, and no script at all.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from batchrun._version import __version__
from batchrun.humanize import counted
from batchrun.manifest.records import Record
from batchrun.planner.diff import ABSENT, value_at
from batchrun.report.build import embedding, relative_href
from batchrun.report.cells import Href, compact, cut, is_text, render_item
from batchrun.report.html import sha256_source
from batchrun.report.pairing import Comparison, Located, Pair
from batchrun.report.style import STYLE

# Pairs shown on one page, and predictions listed from each side alone: past these the page
# stops being something a reviewer scrolls through (and a browser opens at once).
MAX_PAIRS = 300
MAX_ALONE = 200
# A differing input value is cut to this many characters above its pair.
VALUE_CHARS = 300
# Text outputs longer than this are diffed on their first this-many characters: difflib is
# quadratic in the worst case, and the page has to stay readable.
DIFF_CHARS = 20_000

_EXTRA_STYLE = """\
.pair { margin: 18px 0; padding: 12px 14px; background: #fff; border-radius: 10px;
  box-shadow: 0 0 0 1px var(--line); }
.pair h3 { margin: 0 0 6px; font-size: 14px; }
.pair h3 .key { color: var(--soft); font: 12px ui-monospace, Menlo, monospace; }
.differs { margin: 0 0 10px; padding-left: 18px; }
.differs code { font: 12.5px ui-monospace, Menlo, monospace; }
.differs .old { background: #fdeceb; } .differs .new { background: #e3f4e9; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.sides h4 { margin: 0 0 4px; color: var(--soft); font-size: 12.5px; font-weight: 500; }
.sides img { max-width: 100%; }
pre.textdiff { white-space: pre-wrap; margin: 10px 0 0; padding: 8px; background: var(--paper);
  border-radius: 6px; }
pre.textdiff del { background: #fdeceb; color: #b3261e; }
pre.textdiff ins { background: #e3f4e9; color: #146c36; text-decoration: none; }
.alone { display: flex; flex-wrap: wrap; gap: 12px; }
.alone .item { max-width: calc(var(--thumb) + 60px); }
"""
_STYLE_TEXT = "\n" + STYLE + _EXTRA_STYLE
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        f"style-src {sha256_source(_STYLE_TEXT)}",
        "script-src 'none'",
        "img-src 'self' file: data:",
        "media-src 'self' file: data:",
        "base-uri 'none'",
        "form-action 'none'",
    )
)


def render_comparison(
    comparison: Comparison, *, dest: Path, generated: datetime, embed_limit: int | None
) -> str:
    """The whole page, to be written at `dest` (links are relative to its folder)."""
    pairs = comparison.pairs[:MAX_PAIRS]
    only_old = comparison.only_old[:MAX_ALONE]
    only_new = comparison.only_new[:MAX_ALONE]
    shown: list[Located] = [(p.old, p.old_dir) for p in pairs] + [(p.new, p.new_dir) for p in pairs]
    shown += only_old + only_new
    hrefs, notes = _hrefs(shown, dest, embed_limit)
    title = f"{comparison.new.label} compared with {comparison.old.label}"
    parts = [
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">\n',
        f"<title>{escape(title)} · batchrun compare</title>\n",
        f"<style>{_STYLE_TEXT}</style>\n</head>\n<body>\n",
        _header(comparison, title, generated, notes),
        "<main>\n",
    ]
    if comparison.pairs:
        parts.append(
            f'<h2>Side by side <span class="count">{len(comparison.pairs):,}</span></h2>\n'
        )
    parts.extend(_pair(pair, comparison, hrefs) for pair in pairs)
    if len(comparison.pairs) > len(pairs):
        more = len(comparison.pairs) - len(pairs)
        parts.append(
            f'<p class="limit">{more:,} more pairs are not shown (at most {MAX_PAIRS}).</p>\n'
        )
    parts.append(_alone(f"Only in {comparison.old.label}", comparison.only_old, only_old, hrefs))
    parts.append(_alone(f"Only in {comparison.new.label}", comparison.only_new, only_new, hrefs))
    parts.append("</main>\n</body>\n</html>\n")
    return "".join(parts)


def _hrefs(
    shown: Sequence[Located], dest: Path, embed_limit: int | None
) -> tuple[dict[Path, Href], list[str]]:
    """Each run folder's Href: files embedded while they fit (the limit shared by the folders),
    else linked relative to the page."""
    folders = list(dict.fromkeys(folder for _, folder in shown))
    hrefs: dict[Path, Href] = {}
    notes = []
    for folder in folders:
        linked = relative_href(folder, dest.parent)
        if embed_limit is None:
            hrefs[folder] = linked
            continue
        records = [record for record, where in shown if where == folder]
        keys = {record.key for record in records}
        share = embed_limit // len(folders)
        hrefs[folder], note = embedding(folder, records, keys, linked, share)
        if note:
            notes.append(note)
    return hrefs, notes


def _header(comparison: Comparison, title: str, generated: datetime, notes: list[str]) -> str:
    pairs = comparison.pairs
    same = sum(pair.same_prediction for pair in pairs)
    facts = [
        ("before", comparison.old.label),
        ("after", comparison.new.label),
        ("pairs", f"{len(pairs):,}: {len(pairs) - same:,} asked differently, {same:,} the same"),
        (f"only in {comparison.old.label}", f"{len(comparison.only_old):,}"),
        (f"only in {comparison.new.label}", f"{len(comparison.only_new):,}"),
    ]
    rows = "".join(f"<dt>{escape(name)}</dt><dd>{escape(value)}</dd>" for name, value in facts)
    said = "".join(f'<p class="limit">{escape(note)}</p>' for note in notes)
    stamp = generated.strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<header>\n<h1>{escape(title)}</h1>\n"
        f'<p class="meta">batchrun {escape(__version__)} · {escape(stamp)}</p>\n'
        f'<dl class="facts">{rows}</dl>\n{said}</header>\n'
    )


def _pair(pair: Pair, comparison: Comparison, hrefs: dict[Path, Href]) -> str:
    about = _row_label(pair.new)
    head = (
        f'<section class="pair" id="p-{escape(pair.new.key)}">\n'
        f'<h3>{escape(about)} <span class="key">{escape(pair.old.key)} → '
        f"{escape(pair.new.key)}</span></h3>\n"
    )
    if pair.differing:
        items = "".join(_differs(pair, path) for path in pair.differing)
        differs = f'<ul class="differs">{items}</ul>\n'
    else:
        differs = '<p class="hint">the same input to the same model in both runs</p>\n'
    sides = (
        '<div class="sides">'
        f"<div><h4>before · {escape(comparison.old.label)}</h4>"
        f"{render_item(pair.old, hrefs[pair.old_dir], ())}</div>"
        f"<div><h4>after · {escape(comparison.new.label)}</h4>"
        f"{render_item(pair.new, hrefs[pair.new_dir], ())}</div>"
        "</div>\n"
    )
    return head + differs + sides + _text_diff(pair.old, pair.new) + "</section>\n"


def _differs(pair: Pair, path: tuple[str | int, ...]) -> str:
    name = ".".join(str(part) for part in path)
    before, after = (_value(record, path) for record in (pair.old, pair.new))
    return (
        f'<li><code>{escape(name)}</code>: <code class="old">{escape(before)}</code> → '
        f'<code class="new">{escape(after)}</code></li>'
    )


def _value(record: Record, path: tuple[str | int, ...]) -> str:
    value: Any = record.target if path == ("target",) else value_at(record.input, path[1:])
    if value is ABSENT:
        return "(none)"
    return cut(value if isinstance(value, str) else compact(value), VALUE_CHARS)


def _row_label(record: Record) -> str:
    variables = ", ".join(f"{name} {compact(value)}" for name, value in record.vars.items())
    repeat = f" · repeat {record.repeat}" if record.repeat else ""
    return f"{record.job}: {variables or '(no variables)'}{repeat}"


def _text_diff(old: Record, new: Record) -> str:
    """Two text outputs as one text, words removed struck out and words added marked."""
    if not (is_text(old) and is_text(new)):
        return ""
    before, after = str(old.shown_output)[:DIFF_CHARS], str(new.shown_output)[:DIFF_CHARS]
    if before == after:
        return '<p class="hint">the same text in both runs</p>\n'
    a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
    out = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag in ("delete", "replace"):
            out.append(f"<del>{escape(''.join(a[i1:i2]))}</del>")
        if tag in ("insert", "replace"):
            out.append(f"<ins>{escape(''.join(b[j1:j2]))}</ins>")
        if tag == "equal":
            out.append(escape("".join(a[i1:i2])))
    return f'<pre class="textdiff">{"".join(out)}</pre>\n'


def _alone(
    title: str, every: Sequence[Located], shown: Sequence[Located], hrefs: dict[Path, Href]
) -> str:
    if not every:
        return ""
    items = "".join(
        f"<div><h4>{escape(_row_label(record))}</h4>{render_item(record, hrefs[folder], ())}</div>"
        for record, folder in shown
    )
    more = len(every) - len(shown)
    tail = (
        f'<p class="limit">{more:,} more are not shown (at most {MAX_ALONE}).</p>\n' if more else ""
    )
    return (
        f'<h2>{escape(title)} <span class="count">{counted(len(every), "prediction")}</span></h2>\n'
        f'<div class="alone">{items}</div>\n{tail}'
    )
