"""The report's pages of one varied run folder, byte for byte as the code of commit 96afcc1
wrote them (before the layout held its records as columns: issue 22).

The folder has two jobs (one with three matrix axes, an include key and repeats, one whose axis
is a JSON Lines file of mappings), two journals, retried keys (two lines each), failures, a key
in flight, missing files, images, text and JSON outputs, sandbox and real records, costs, and a
key the spec no longer plans. Each page is written under other options: the default, --all
with chosen axes, tight limits, embedded files, and the spec gone.

A page that changes on purpose is written again with `BATCHRUN_GOLDEN=write pytest THIS_FILE`,
and the diff is reviewed: a layout change must not change any page by accident.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from runfolder import NOW, REAL, SANDBOX, GoldenJournals, png, stamp

from batchrun._version import __version__
from batchrun.manifest import tablerow, tablevalues
from batchrun.manifest.records import Record
from batchrun.manifest.table import load_table
from batchrun.manifest.tablecache import TABLE_CACHE
from batchrun.planner.expand import iter_plan
from batchrun.report.build import build_report
from batchrun.report.grid import Limits
from batchrun.spec.load import load_spec

GOLDEN = Path(__file__).parent / "golden"
SPEC = """\
batchrun: 1
name: golden-report
price: {per_second: 0.0014}
jobs:
  - id: flux
    model: acme/flux
    input: {prompt: "${subject}, ${style}", seed: "${seed}", size: "${size}"}
    matrix:
      subject: ["a red fox", "a paper boat", "<b>bold</b> & 'quoted'"]
      style: [watercolor, pixel art]
      seed: [10, 2, 1.5]
    include:
      - {style: pixel art, size: 512}
      - {style: watercolor, size: 768}
    repeat: 2
  - id: chat
    model: acme/chat
    input: {prompt: "${row.q}"}
    matrix:
      row: {jsonl: rows.jsonl}
"""
ROWS = [
    {"q": "why is the sky blue?", "lang": "en"},
    {"q": "pourquoi le ciel est-il bleu ?", "lang": "fr"},
    {"q": 'a question with <html> & "quotes"', "lang": "en"},
    {"lang": "de", "q": "warum ist der Himmel blau?"},
]


def write_folder(root: Path) -> Path:
    """The spec and its run folder (see the module's docstring); returns the spec's path."""
    (root / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    (root / "spec.yaml").write_text(SPEC)
    spec = load_spec(root / "spec.yaml")
    run = spec.output
    run.mkdir(parents=True)
    journals = GoldenJournals(spec)
    for n, planned in enumerate(iter_plan(spec)):
        record = Record.planned(planned, "succeeded").replace(
            prediction_id=f"p{n:04d}",
            version="5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
            metrics={"predict_time": 0.5 + n / 8},
            created_at=stamp(2 * n),
            started_at=stamp(2 * n),
            completed_at=stamp(2 * n + 1),
            attempts=1,
            cost=0.0007 + n / 10_000,
            price={"per_second": 0.0014},
        )
        if planned.job == "flux":
            path = f"flux/{planned.key}.png"
            (run / path).parent.mkdir(parents=True, exist_ok=True)
            (run / path).write_bytes(png(4 + n % 3, 3))
            data = record.replace(output=[f"https://files.example/{planned.key}.png"]).to_json()
            data["files"] = [
                {
                    "url": f"https://files.example/{planned.key}.png",
                    "path": path,
                    "sha256": "00" * 32,
                    "bytes": (run / path).stat().st_size,
                }
            ]
        else:
            output: Any = f"answer {n}" if n % 3 else {"text": f"answer {n}", "tokens": n}
            data = record.replace(output=output).to_json()
        data["api"] = SANDBOX if n % 9 == 2 else REAL
        if n % 7 == 3:
            data.update(status="failed", error=f"CUDA out of memory <{n}>", output=None, files=[])
        elif n % 11 == 4:
            data.update(status="processing", output=None, completed_at=None, files=[])
        elif n % 10 == 6:
            data.update(status="canceled", output=None, files=[])
        elif n % 13 == 5 and data["files"]:
            data["missing"] = [data["files"][0]["url"]]
            data["files"] = []
        journals.add(n, data)
    journals.retry()
    gone = Record(
        key="00000000000000aa",
        job="flux",
        target={"model": "acme/flux"},
        input={"prompt": "an old prompt"},
        vars={"subject": "an old subject", "style": "watercolor", "seed": 3},
        repeat=0,
        status="succeeded",
        output="gone",
        created_at=stamp(300),
        completed_at=stamp(301),
    ).to_json()
    journals.main.append({**gone, "api": REAL, "written_ns": journals.written + 1})
    journals.write(run)
    return spec.path


PAGES: dict[str, dict[str, Any]] = {
    "default": {},
    "all-seed-by-job": {"everything": True, "rows": "seed", "cols": "job"},
    "limits": {"limits": Limits(items=9, sections=2, rows=2, cols=2, stack=1)},
    "embedded": {"embed_limit": 1_000_000, "rows": "style", "cols": "subject"},
}


def pages(root: Path) -> dict[str, str]:
    """Each page of `PAGES`, then "no-spec" (the default page once the spec is gone), with
    the folder's path and batchrun's version replaced, as the golden files keep them."""
    spec = write_folder(root)
    run = load_spec(spec).output
    written = {name: build_report(run, now=NOW, **options) for name, options in PAGES.items()}
    spec.unlink()
    written["no-spec"] = build_report(run, now=NOW)
    version = f"by batchrun {__version__}<"
    return {
        name: page.replace(str(root), "/ROOT").replace(version, "by batchrun VERSION<")
        for name, page in written.items()
    }


@pytest.mark.parametrize("name", [*PAGES, "no-spec"])
def test_page_is_as_before(tmp_path: Path, name: str) -> None:
    page = pages(tmp_path)[name]
    golden = GOLDEN / f"{name}.html"
    if os.environ.get("BATCHRUN_GOLDEN") == "write":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(page, encoding="utf-8")
    assert page == golden.read_text(encoding="utf-8")


def test_pages_are_as_before_when_no_variable_keeps_its_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past WIDE_VALUES distinct values a variable keeps their digests, not the values (a text
    of its own per key): with the limit at 1, every variable of the folder is such a one (the
    seeds, 10, 2 and 1.5, still in number order; the rows, mappings, still in the cost
    tables), and each value a page shows is read back from its line."""
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 1)
    for name, page in pages(tmp_path).items():
        assert page == (GOLDEN / f"{name}.html").read_text(encoding="utf-8"), name
    table = load_table(tmp_path / "runs" / "golden-report", variables=True)
    assert all(table.variables[name].wide for name in ("subject", "style", "seed", "row"))


def test_a_page_from_the_table_kept_on_disk_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The report keeps its table, variables and all, on disk (.batchrun-table.bin); the next
    one parses no line, and writes the same page."""
    run = load_spec(write_folder(tmp_path)).output
    first = build_report(run, now=NOW, everything=True)
    assert (run / TABLE_CACHE).exists()
    parsed: list[int] = []
    real = tablerow.append
    monkeypatch.setattr(tablerow, "append", lambda *args: parsed.append(1) or real(*args))
    assert build_report(run, now=NOW, everything=True) == first
    assert parsed == []
