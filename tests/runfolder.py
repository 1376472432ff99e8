"""Run folders written by hand (records, PNG files, a manifest) and the report's grids read back."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from batchrun.manifest.records import FileRecord, Record
from batchrun.manifest.table import load_index
from batchrun.manifest.writer import ManifestWriter, new_header
from batchrun.spec.load import Spec

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
# Where the golden folders' journals say their records came from.
REAL = {"url": "https://api.replicate.com", "sandbox": False}
SANDBOX = {"url": "http://127.0.0.1:8765", "sandbox": True}


def stamp(second: int) -> str:
    """A golden folder's time: `second` seconds into one fixed hour."""
    return f"2024-05-06T07:{second // 60 % 60:02d}:{second % 60:02d}.000Z"


class GoldenJournals:
    """The two journals of a golden run folder (the report's and the export's), as lines: the
    main one and shard 2 of 2, which takes every fifth key of the plan; every eighth key failed
    once, its retry at the end of the main journal (`retry`). Each line is stamped with the
    next `written_ns` as it is added."""

    def __init__(self, spec: Spec) -> None:
        made = {"spec_path": spec.path, "spec_sha256": spec.sha256, "name": spec.name}
        self.main: list[dict[str, Any]] = [new_header(**made, shard=None)]
        self.shard: list[dict[str, Any]] = [new_header(**made, shard=(2, 2))]
        for header in (self.main[0], self.shard[0]):
            header["written_at"] = stamp(0)
        self.retried: list[dict[str, Any]] = []
        self.written = 1_000

    def add(self, n: int, line: dict[str, Any]) -> None:
        """The line of the plan's `n`th key, in its journal (failed first, if it is retried)."""
        self.written += 1
        journal = self.shard if n % 5 == 4 else self.main
        if n % 8 == 1:
            failed = {**line, "status": "failed", "error": "timeout", "written_ns": self.written}
            journal.append(failed)
            self.retried.append(line)
            return
        journal.append({**line, "written_ns": self.written})

    def retry(self) -> None:
        """The retried keys' lines, at the end of the main journal."""
        for line in self.retried:
            self.written += 1
            self.main.append(
                {**line, "attempts": 2, "cost_before": 0.0005, "written_ns": self.written}
            )

    def write(self, run: Path) -> None:
        """Both journals into the run folder."""
        dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        for name, lines in (
            ("manifest.jsonl", self.main),
            ("manifest.shard-2-of-2.jsonl", self.shard),
        ):
            (run / name).write_text("".join(dumps(line) + "\n" for line in lines), encoding="utf-8")


def png(width: int = 4, height: int = 3) -> bytes:
    """A tiny valid RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", header),
            chunk(b"IDAT", zlib.compress(rows)),
            chunk(b"IEND", b""),
        )
    )


def rec(key: str, status: str = "succeeded", job: str = "flux", **changes: Any) -> Record:
    base = Record(
        key=key,
        job=job,
        target={"model": "acme/flux"},
        input={"prompt": f"p-{key}"},
        vars={},
        repeat=0,
        status=status,
    )
    return base.replace(**changes)


def image(run: Path, key: str, path: str, **changes: Any) -> Record:
    """A succeeded record with one PNG file written at `path` in the run folder."""
    data = png()
    (run / path).parent.mkdir(parents=True, exist_ok=True)
    (run / path).write_bytes(data)
    files = (FileRecord(f"https://files.example/{key}.png", path, "00" * 32, len(data)),)
    return rec(key, files=files, **changes)


def write_run(run: Path, records: Iterable[Record], *, spec: Path | None = None) -> Path:
    header = new_header(
        spec_path=spec or run / "gone.yaml", spec_sha256="ab" * 32, name="sweep", shard=None
    )
    writer = ManifestWriter.open(run / "manifest.jsonl", header, load_index(run))
    for record in records:
        writer.append(record)
    writer.close()
    return run


class Grids(HTMLParser):
    """The page's grids as data: each section's title, column heads and rows of cells.

    A cell is None when empty, else a list with one string per prediction:
    "<status> <img src...> <text>", whitespace collapsed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict[str, Any]] = []
        self._text: list[str] | None = None
        self._where = ""
        self._item: list[str] | None = None
        self._grid = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self._text is not None:
            self._text.append(" ")
        if tag == "section":
            self.sections.append({"title": "", "head": [], "rows": []})
        elif tag == "table":
            self._grid = a.get("class") == "grid"
        elif not self.sections:
            return
        elif tag == "h2":
            self._text = []
        elif tag in ("thead", "tbody"):
            self._where = tag
        elif tag == "tr" and self._where == "tbody":
            self.sections[-1]["rows"].append({"head": None, "cells": []})
        elif tag == "th" and self._grid:
            self._text = []
        elif tag == "td":
            cell: list[str] | None = None if "empty" in (a.get("class") or "") else []
            self.sections[-1]["rows"][-1]["cells"].append(cell)
        elif tag == "figure":
            status = (a.get("class") or "").split()[1]
            self._item = [status]
            self._text = []
        elif tag == "img" and self._item is not None:
            self._item.append(a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._text is not None:
            self._text.append(" ")
        if tag == "table":
            self._grid = False
        elif tag == "h2" and self._text is not None:
            self.sections[-1]["title"] = " ".join("".join(self._text).split())
            self._text = None
        elif tag == "th" and self._text is not None:
            text = " ".join("".join(self._text).split())
            if self._where == "thead":
                self.sections[-1]["head"].append(text)
            else:
                self.sections[-1]["rows"][-1]["head"] = text
            self._text = None
        elif tag == "figure" and self._item is not None and self._text is not None:
            text = " ".join("".join(self._text).split())
            summary = " ".join([*self._item, text]).strip()
            self.sections[-1]["rows"][-1]["cells"][-1].append(summary)
            self._item = self._text = None

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)


def grids(page: str) -> list[dict[str, Any]]:
    parser = Grids()
    parser.feed(page)
    return parser.sections
