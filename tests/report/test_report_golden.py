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
from runfolder import NOW, png

from batchrun._version import __version__
from batchrun.manifest import tablerow
from batchrun.manifest.records import Record
from batchrun.manifest.tablecache import TABLE_CACHE
from batchrun.manifest.writer import new_header
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
REAL = {"url": "https://api.replicate.com", "sandbox": False}
SANDBOX = {"url": "http://127.0.0.1:8765", "sandbox": True}


def stamp(second: int) -> str:
    return f"2024-05-06T07:{second // 60 % 60:02d}:{second % 60:02d}.000Z"


def write_folder(root: Path) -> Path:
    """The spec and its run folder (see the module's docstring); returns the spec's path."""
    (root / "rows.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    (root / "spec.yaml").write_text(SPEC)
    spec = load_spec(root / "spec.yaml")
    run = spec.output
    run.mkdir(parents=True)
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    main = [new_header(spec_path=spec.path, spec_sha256=spec.sha256, name=spec.name, shard=None)]
    shard = [new_header(spec_path=spec.path, spec_sha256=spec.sha256, name=spec.name, shard=(2, 2))]
    for header in (main[0], shard[0]):
        header["written_at"] = stamp(0)
    retried: list[dict[str, Any]] = []
    written = 1_000
    for n, planned in enumerate(iter_plan(spec)):
        written += 1
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
        journal = shard if n % 5 == 4 else main
        if n % 8 == 1:  # failed once, retried at the end of the journal
            journal.append({**data, "status": "failed", "error": "timeout", "written_ns": written})
            retried.append(data)
            continue
        journal.append({**data, "written_ns": written})
    for data in retried:
        written += 1
        main.append({**data, "attempts": 2, "cost_before": 0.0005, "written_ns": written})
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
    main.append({**gone, "api": REAL, "written_ns": written + 1})
    (run / "manifest.jsonl").write_text("".join(dumps(line) + "\n" for line in main))
    (run / "manifest.shard-2-of-2.jsonl").write_text("".join(dumps(line) + "\n" for line in shard))
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
