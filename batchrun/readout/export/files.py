"""An `hf` export's files, each redacted and hashed as it is written, and the record listing them.

Every new file goes through safefs; a run's output files are linked in (copied where a link is
refused); `EXPORT_RECORD` lists each file's size and sha256 after the export's counts."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from batchrun import safefs
from batchrun.errors import StorageError, secrets_in_use
from batchrun.readout.export.card import Card
from batchrun.readout.export.layout import EXPORT_FORMAT


@dataclass(frozen=True)
class FileSum:
    """One file of an export, as `EXPORT_RECORD` lists it (path relative to the export)."""

    path: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path, "bytes": self.bytes, "sha256": self.sha256}


class Sums:
    """The files of an export as `EXPORT_RECORD` lists them, one line each, spooled to a file
    (a million files' sums need not be in memory): counted, and copied out at the end."""

    def __init__(self, spool: IO[str]) -> None:
        self.spool = spool
        self.count = 0

    def add(self, file: FileSum) -> None:
        self.spool.write(json.dumps(file.to_json(), ensure_ascii=False) + "\n")
        self.count += 1

    def lines(self) -> Iterator[str]:
        self.spool.flush()
        self.spool.seek(0)
        yield from self.spool


class Sink:
    """A new file of the export, written as text: each write redacted (a sink, docs/SECURITY.md:
    a record may quote a server that echoed the token; writes are of whole lines, and no secret
    spans a line), then hashed and counted as it goes."""

    def __init__(self, out: BinaryIO, path: str) -> None:
        self.out = out
        self.path = path
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> int:
        data = secrets_in_use().document(text).encode("utf-8")
        self.out.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(text)

    def file_sum(self) -> FileSum:
        return FileSum(self.path, self.size, self.digest.hexdigest())


@contextlib.contextmanager
def new_file(folder: Path, name: str, root: Path | None = None) -> Iterator[Sink]:
    """A new file of the export (through safefs, like every write: docs/SECURITY.md, though
    the folder is new); its path in `EXPORT_RECORD` is relative to `root`."""
    path = folder / name
    with safefs.create_new(path, root or folder) as out:
        yield Sink(out, path.relative_to(root or folder).as_posix())


def write_text(folder: Path, name: str, text: str) -> FileSum:
    with new_file(folder, name) as out:
        out.write(text)
    return out.file_sum()


def write_export_record(path: Path, card: Card, sums: Sums) -> None:
    header = {
        "batchrun_export": EXPORT_FORMAT,
        "name": card.name,
        "planned": card.planned,
        "here": card.here,
        "not_in_spec": card.here_gone,
        "missing": dict(card.missing_reasons),
        "apis": [
            {"url": url, "sandbox": sandbox, "predictions": n}
            for (url, sandbox), n in card.apis.items()
        ],
        "files": sums.count,
        "provenance": card.provenance.to_json(),
    }
    redact = secrets_in_use().document  # a sink, as `Sink` is, line by line
    with safefs.create_new(path, path.parent) as out:
        out.write(redact(json.dumps(header, ensure_ascii=False) + "\n").encode("utf-8"))
        for line in sums.lines():
            out.write(redact(line).encode("utf-8"))
        for key, job, why in card.missing:
            line = json.dumps({"missing": key, "job": job, "why": why}, ensure_ascii=False)
            out.write(redact(line + "\n").encode("utf-8"))
        for key, job, url in card.sandbox:
            line = json.dumps({"sandbox": key, "job": job, "api": url}, ensure_ascii=False)
            out.write(redact(line + "\n").encode("utf-8"))


def link(source: Path, dest: Path, root: Path) -> None:
    # A hard link costs no space and keeps the run folder the one copy; across file systems
    # (or where links are refused) the file is copied. Either way only inside `root`, and never
    # over (or through) what is already at `dest`: os.link refuses an existing name, and the
    # copy goes through safefs.
    safefs.check_inside(dest, root)
    try:
        os.link(source, dest)
    except FileExistsError:
        raise StorageError(f"cannot write {dest}: two files of the export share its name") from None
    except OSError:
        with safefs.open_regular(source, None) as reading, safefs.create_new(dest, root) as out:
            shutil.copyfileobj(reading, out)
