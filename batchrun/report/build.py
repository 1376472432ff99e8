"""`batchrun report`: a run folder as one self-contained HTML page.

    html = build_report(Path("runs/sweep"), rows="subject", cols="seed")

The page needs no network: CSS is inline and files are embedded as data: URIs (`embed_limit`)
or linked by paths relative to where the page is written (`dest`, by default
`RUN/report.html`), so it works offline and when the run folder is moved or zipped whole.
The data flow:

    manifests → a table of a few numbers per key, its variables in columns (load_table) →
    layout (report_layout) → sections and cells within limits (report_grid) → the records shown,
    read back whole → HTML (report_html, report_cells)

Only the spec's declared axis order is taken from the spec, and only while the spec still loads;
everything else comes from the manifests, so a report of an old run works after its spec has
changed or gone.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from batchrun import safefs
from batchrun.errors import BatchrunError
from batchrun.humanize import human_bytes
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import ALL_STATUSES, Record
from batchrun.manifest.scope import scope_table, spec_to_scope
from batchrun.manifest.state import counts_as_sandbox, pins_for_reading
from batchrun.manifest.table import load_table
from batchrun.readout.status import summarize_table
from batchrun.report.cells import Href
from batchrun.report.grid import DEFAULT_LIMITS, Gallery, Limits, build_gallery
from batchrun.report.html import Page, render_page
from batchrun.report.layout import Placings, choose_layout
from batchrun.spec.load import Spec, load_spec

REPORT_NAME = "report.html"


def build_report(
    run_dir: Path,
    *,
    dest: Path | None = None,
    rows: str | None = None,
    cols: str | None = None,
    limits: Limits = DEFAULT_LIMITS,
    now: datetime | None = None,
    current: Spec | None = None,
    everything: bool = False,
    embed_limit: int | None = None,
) -> str:
    """The report page of `run_dir`, to be written at `dest`; UsageError for an unknown variable.

    It shows the predictions of the current spec (`current`, else the one the manifest names);
    with `everything`, also those that spec no longer plans. With `embed_limit` (bytes), the
    files it shows are embedded in the page while they add up to no more than that, so the one
    file works anywhere; otherwise, and above it, they are linked by relative path.
    """
    # A few numbers per key, its variables among them; records are read back as the page
    # needs them: those it shows, its failures and (status) the priced ones' costs.
    table = load_table(run_dir, variables=True, save=True)  # kept on disk: tablecache.py
    headers = table.headers
    spec = _first(headers, "spec")
    split = scope_table(table, *spec_to_scope(current or (Path(spec) if spec else None)))
    # The gallery shows the results of the kind of API the folder is counted as (its last
    # run's): a real run's report never shows the sandbox's pictures as its own. The summary
    # still names every API the records came from.
    sandbox = counts_as_sandbox(headers)
    shown_api = array(
        "I",
        (row for row in split.chosen_rows(everything) if bool(table.sandbox_of(row)) == sandbox),
    )
    placings = Placings.of_table(table, shown_api)
    declared = declared_axes(Path(spec)) if spec else ()
    layout = choose_layout(placings, declared, rows, cols)
    gallery = build_gallery(placings, layout, limits)
    shown = _whole(table, placings, gallery)
    href = relative_href(run_dir, (dest or run_dir / REPORT_NAME).parent)
    embed_note = None
    if embed_limit is not None:
        keys = {record.key for record in shown.values()}
        href, embed_note = embedding(run_dir, list(shown.values()), keys, href, embed_limit)
    status = summarize_table(
        table,
        split.chosen_rows(everything),
        pins_for_reading(split.spec),
        run_dir=run_dir,
        costs_by_value=True,
    )
    page = Page(
        name=_first(headers, "name") or run_dir.name,
        run_dir=str(run_dir),
        spec=spec,
        status=status,
        gallery=gallery,
        href=href,
        generated=now or datetime.now(UTC),
        scope_note=split.note(everything),
        embed_note=embed_note,
        shown=shown,
        statuses={ALL_STATUSES[place] for place in set(map(table.status.__getitem__, shown_api))},
    )
    return render_page(page)


def _whole(table: KeyTable, placings: Placings, gallery: Gallery) -> dict[int, Record]:
    """The records the gallery shows, read back whole, by their index in the `Placings` (read
    in the order the journals hold them)."""
    indices = sorted(gallery.shown_indices, key=placings.rows.__getitem__)
    records = table.records(placings.rows[index] for index in indices)
    return dict(zip(indices, records, strict=True))


def _first(headers: Sequence[dict[str, Any]], field: str) -> str | None:
    for header in headers:
        value = header.get(field)
        if isinstance(value, str) and value:
            return value
    return None


def relative_href(run_dir: Path, page_dir: Path) -> Href:
    """Maps a file's path in the run folder to its URL-quoted address from the page's folder."""
    prefix = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(page_dir))
    prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"

    def href(path: str) -> str:
        # Quoting `:` too means no path can ever read as a scheme (`javascript:`).
        return quote(prefix + path.replace(os.sep, "/"), safe="/")

    return href


def embedding(
    run_dir: Path, records: Sequence[Record], shown: set[str], linked: Href, limit: int
) -> tuple[Href, str | None]:
    """An Href that embeds each shown file as a data: URI, if together they fit in `limit`
    bytes; else `linked` and the note that says why the page needs its run folder."""
    if limit <= 0:
        return linked, None
    total = sum(f.bytes for record in records if record.key in shown for f in record.files)
    if total > limit:
        note = (
            f"files are linked, not embedded: the {human_bytes(total)} shown are over the "
            f"{human_bytes(limit)} limit (--embed-limit); keep this page beside {run_dir.name}/"
        )
        return linked, note

    def embedded(path: str) -> str:
        # Base64 makes a file a third larger; the limit counts the files as they are.
        try:
            # Only a regular file inside the run folder: a link planted there must not put
            # ~/.ssh/id_rsa into a page meant to be shared, nor /dev/zero into memory.
            with safefs.open_regular(run_dir / path, run_dir) as handle:
                data = handle.read()
        except OSError:
            return linked(path)  # a file gone since the run: the link shows what is missing
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"

    return embedded, None


def declared_axes(spec_path: Path) -> tuple[str, ...]:
    """Every job's matrix axes in the order the spec declares them; () if it no longer loads.

    The report must work from the manifest alone, so a spec that moved, changed or broke only
    costs the declared order (the records' own order is used instead).
    """
    try:
        spec = load_spec(spec_path)
        names: dict[str, None] = {}
        for job in spec.jobs:
            names.update(dict.fromkeys(job.matrix.names))
    except (BatchrunError, OSError, ValueError):
        return ()
    return tuple(names)
