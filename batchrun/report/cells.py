"""One cell of the report: what one prediction left, as HTML.

Everything shown is escaped: prompts are user text and outputs and errors come from a server.
Files are linked by a relative, URL-quoted path, so the page works offline and when the run
folder moves; long texts and errors are cut, so no single cell can make the page huge.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from batchrun.errors import secrets_in_use
from batchrun.manifest.records import FAILED, IN_FLIGHT, FileRecord, Record
from batchrun.report.layout import Value

TEXT_CHARS = 2000
ERROR_CHARS = 1000
TITLE_CHARS = 400

IMAGE = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".avif", ".bmp", ".svg"})
VIDEO = frozenset({".mp4", ".webm", ".mov", ".m4v"})
AUDIO = frozenset({".mp3", ".wav", ".ogg", ".flac", ".m4a", ".aac"})

Href = Callable[[str], str]  # a file's path in the run folder → its address from the report


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and how many more there were."""
    if len(text) <= limit:
        return text  # the page is redacted whole when it is written (commands/report.py)
    text = secrets_in_use().text(text)  # before the cut, which could leave a secret's start
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def compact(value: Any) -> str:
    """A JSON value on one line, as a person reads it."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


def seconds(value: float) -> str:
    """1.234 → '1.23s'; 75 → '75.0s' (cells compare predictions, so keep the precision)."""
    return f"{value:.2f}s" if value < 10 else f"{value:.1f}s"


def status_class(status: str) -> str:
    """The CSS class that colours a status."""
    return "inflight" if status in IN_FLIGHT else status


def render_item(
    record: Record, href: Href, captions: Sequence[tuple[str, Value]], *, repeats: bool = False
) -> str:
    """One prediction: its files, text or error, and a caption (`repeats`: name its repeat)."""
    # "text": a text output, which reads better wide than in a thumbnail's column.
    wide = " text" if is_text(record) else ""
    parts = [f'<figure class="item {escape(status_class(record.status))}{wide}"']
    parts.append(f' id="k-{escape(record.key)}" data-status="{escape(record.status)}"')
    parts.append(f' title="{escape(_title(record))}">')
    parts.append(_body(record, href))
    caption = _caption(record, captions, repeats)
    if caption:
        parts.append(f"<figcaption>{caption}</figcaption>")
    parts.append("</figure>")
    return "".join(parts)


def is_text(record: Record) -> bool:
    """Whether a prediction's result is text (a language model's), not files or an error."""
    return not record.files and isinstance(record.shown_output, str) and record.status not in FAILED


def _body(record: Record, href: Href) -> str:
    if record.status in FAILED:
        error = cut(record.error or "(no error message)", ERROR_CHARS)
        return f'{_badge(record.status)}<pre class="error">{escape(error)}</pre>'
    if record.status in IN_FLIGHT:
        return f'{_badge(record.status)}<p class="note">not finished when the manifest was read</p>'
    shown = [_file(file, href) for file in record.files]
    if record.missing:
        count = len(record.missing)
        noun = "file" if count == 1 else "files"
        shown.append(f'<p class="missing">{count} {noun} not downloaded</p>')
    if shown:
        return "".join(shown)
    output = record.shown_output
    if output is None:
        return '<p class="note">no output</p>'
    text = output if isinstance(output, str) else compact(output)
    kind = "text" if isinstance(output, str) else "text json"
    return f'<pre class="{kind}">{escape(cut(text, TEXT_CHARS))}</pre>'


def _badge(status: str) -> str:
    return f'<span class="badge">{escape(status)}</span>'


def in_run_folder(path: str) -> bool:
    """Whether a manifest's file path stays inside the run folder (an edited manifest may say
    `/etc/passwd` or `../../x`; the report links only what the run wrote)."""
    norm = posixpath.normpath(path.replace("\\", "/"))
    return not (norm.startswith(("/", "../")) or norm == "..")


def _file(file: FileRecord, href: Href) -> str:
    name = escape(posixpath.basename(file.path))
    if not in_run_folder(file.path):
        return f'<p class="missing">{name}: outside the run folder, not linked</p>'
    address = escape(href(file.path))
    extension = posixpath.splitext(file.path)[1].lower()
    if extension in IMAGE:
        return f'<a href="{address}"><img src="{address}" alt="{name}" loading="lazy"></a>'
    if extension in VIDEO:
        return f'<video src="{address}" controls preload="metadata"></video>'
    if extension in AUDIO:
        return f'<audio src="{address}" controls preload="none"></audio>'
    return f'<a class="file" href="{address}">{name}</a>'


def _caption(record: Record, captions: Sequence[tuple[str, Value]], repeats: bool) -> str:
    pieces = [f"{escape(name)} {escape(value.label)}" for name, value in captions]
    if repeats:
        pieces.append(f"repeat {record.repeat}")
    predict_time = record.metrics.get("predict_time")
    if isinstance(predict_time, int | float) and not isinstance(predict_time, bool):
        pieces.append(seconds(float(predict_time)))
    return " · ".join(pieces)


def _title(record: Record) -> str:
    """The tooltip: which prediction this is and what it was asked."""
    lines = [f"key {record.key} · {record.status}"]
    if record.prediction_id:
        lines.append(f"prediction {record.prediction_id}")
    lines.append(cut(compact(record.input), TITLE_CHARS))
    return "\n".join(lines)
