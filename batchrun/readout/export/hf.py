"""The `hf` folder: one subfolder per job, its card, and the record `batchrun verify` checks."""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from batchrun import safefs
from batchrun.errors import (
    ManifestError,
    StorageError,
    UsageError,
    secrets_in_use,
)
from batchrun.manifest.keytable import KeyTable
from batchrun.manifest.records import (
    UNKNOWN_API,
    Record,
    Status,
)
from batchrun.manifest.state import State, key_state
from batchrun.readout.export import layout
from batchrun.readout.export.card import Card, HfJob, dataset_card
from batchrun.readout.export.formats import jsonl_line
from batchrun.readout.export.layout import EXPORT_FORMAT, EXPORT_RECORD
from batchrun.readout.export.rows import export_row, table_columns

# Why a planned prediction is not in a dataset, besides its status when it failed.
NOT_STARTED = "not started"
STILL_IN_FLIGHT = "in flight"
FILES_CHANGED = "files missing or changed"


@dataclass(frozen=True)
class FileSum:
    """One file of an export, as `EXPORT_RECORD` lists it (path relative to the export)."""

    path: str
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"file": self.path, "bytes": self.bytes, "sha256": self.sha256}


def api_of(record: Record) -> tuple[str, bool | None]:
    """The API a record says it ran on, and whether that was the sandbox (None: not known, for
    a record written before batchrun kept it: shown as "unknown", never guessed)."""
    if record.api is None:
        return UNKNOWN_API, None
    return record.api.url, record.api.sandbox


def left_out_reason(record: Record, run_dir: Path) -> str | None:
    """Why a recorded prediction stays out of a dataset; None when it goes in.

    `key_state`'s rule: only a succeeded prediction whose files are all as recorded (size and
    sha256) is exported, so a file changed after the run never passes for the model's output.
    """
    # Judged as the kind of API that made it: a sandbox result's files are checked too (the
    # card and `verify` say it is the sandbox's).
    state = key_state(record, run_dir, sandbox=record.sandbox)
    if state is State.IN_FLIGHT:
        return STILL_IN_FLIGHT
    if state is State.FAILED:
        return str(record.status)
    if state is State.DOWNLOAD:
        return FILES_CHANGED
    return None


def write_hf(
    table: KeyTable,
    rows: Sequence[int],
    run_dir: Path,
    dest: Path,
    card: Card,
    *,
    force: bool = False,
) -> list[HfJob]:
    """The `hf` folder at `dest` of the records of these table rows (loaded with
    `variables=True`), built beside it and then renamed into place, so a reader never
    sees half a dataset. `dest` must not exist or be empty; with `force` it may hold an earlier
    export, which the new one replaces in one step. The records stream, read back from the
    journals twice: once to check and count them all, then a job at a time to write; the
    files' sums spooled to disk until the export record is written."""
    dest = Path(os.path.abspath(dest))
    replacing = _replaceable(dest, force)
    by_job = _sort_out(table, rows, run_dir, card)  # before anything is written
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        with tempfile.TemporaryFile("w+", encoding="utf-8", dir=dest.parent) as spool:
            sums = _Sums(spool)
            jobs = [
                _write_job(job, table, kept, kinds, run_dir, building, sums)
                for job, (kept, kinds) in by_job.items()
            ]
            sums.add(_write_text(building, "README.md", dataset_card(jobs, card)))
            _write_export_record(building / EXPORT_RECORD, card, sums)
        if replacing:
            shutil.rmtree(safefs.swap_folder(building, dest), ignore_errors=True)
        else:
            if dest.exists():
                dest.rmdir()
            os.replace(building, dest)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise StorageError(f"cannot write {dest}: {error.strerror or error}") from None
    return jobs


def _replaceable(dest: Path, force: bool) -> bool:
    """Whether `dest` holds an earlier export to replace; UsageError when it may not be written."""
    if not dest.exists() and not dest.is_symlink():
        return False
    if dest.is_symlink() or not dest.is_dir():
        raise UsageError(f"--to {dest}: already there and not a folder")
    if not any(dest.iterdir()):
        return False
    if not force:
        raise UsageError(
            f"--to {dest}: already there and not an empty folder "
            "(--force replaces an earlier export)"
        )
    if not (dest / EXPORT_RECORD).is_file():
        # --force never deletes a folder batchrun did not write (`--to ~` by mistake).
        raise UsageError(
            f"--to {dest}: --force replaces only an earlier export (a folder with "
            f"{EXPORT_RECORD}), and this folder has none"
        )
    return True


# What `hf` names files after: the 16 hex characters of a key (planner/keys.py), or at least
# nothing that could be a path. A manifest someone edited may say anything.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _files_inside(record: Record, run_dir: Path) -> None:
    """A manifest someone edited may name /home/me/.ssh/id_rsa as an output file: a dataset
    (often uploaded) takes only regular files inside the run folder (docs/SECURITY.md)."""
    if record.status != Status.SUCCEEDED or record.missing:
        return  # left out of the dataset anyway
    if not _KEY_NAME.fullmatch(record.key):
        # The key names the dataset's files: `../../../outside/x` would leave `--to`.
        raise ManifestError(
            f"{run_dir}: the manifest names the key {record.key[:80]!r}, which is not a key"
            " batchrun makes; nothing was exported"
        )
    for file in record.files:
        source = run_dir / file.path
        if not safefs.is_inside(source, run_dir) or not source.is_file():
            raise ManifestError(
                f"{run_dir}: the manifest names {file.path!r} for key {record.key}, "
                "which is not a file inside the run folder; nothing was exported"
            )


class _Sums:
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


def _sort_out(
    table: KeyTable, rows: Sequence[int], run_dir: Path, card: Card
) -> dict[str, tuple[array[int], Counter[str]]]:
    """One pass over the records: each checked (`_files_inside`: a ManifestError before
    anything is written), counted on the card, and, if it goes in, its row and the kinds of its
    files kept under its job."""
    card.missing = [(key, job, NOT_STARTED) for key, job in card.not_started]
    by_job: dict[str, tuple[array[int], Counter[str]]] = {}
    for row, record in zip(rows, table.records(rows), strict=True):
        _files_inside(record, run_dir)
        reason = left_out_reason(record, run_dir)
        gone = record.key in card.gone
        if reason is not None:
            card.left_out[reason] += 1
            if not gone:
                card.missing.append((record.key, record.job, reason))
            continue
        if gone:
            card.here_gone += 1
        else:
            card.here += 1
        url, sandbox = api_of(record)
        card.apis[url, sandbox] += 1
        if sandbox:
            card.sandbox.append((record.key, record.job, url))
        kept, kinds = by_job.setdefault(record.job, (array("I"), Counter()))
        kept.append(row)
        kinds.update(posixpath.splitext(file.path)[1].lower() for file in record.files)
    return by_job


def _write_job(
    job: str,
    table: KeyTable,
    rows: Sequence[int],
    extensions: Counter[str],
    run_dir: Path,
    root: Path,
    sums: _Sums,
) -> HfJob:
    folder = root / layout.folder_name(job)
    folder.mkdir()
    kind = layout.kind(extensions)
    done = HfJob(job, kind)
    # The rows' columns: a key without files makes no row of a job of files.
    with_rows = rows if kind == "json" else [row for row in rows if table.files[row]]
    columns = (["file_name", "file_index"] if kind != "json" else []) + table_columns(
        table, with_rows
    )

    to_line = jsonl_line(columns)

    def lines() -> Iterator[str]:
        for at, line in table.lines_of(rows):
            record = table.record_of(at, line)
            done.predictions += 1
            done.targets.add(_target_text(record.target))
            if record.version:
                done.versions[record.version] += 1
            row = export_row(line)
            if kind == "json":
                done.rows += 1
                yield to_line(row)
                continue
            for index, file in enumerate(record.files):
                name = f"{record.key}-{index}{posixpath.splitext(file.path)[1].lower()}"
                _link(run_dir / file.path, folder / name, root)
                # As recorded: `left_out_reason` has just checked the bytes against the record.
                sums.add(FileSum(f"{folder.name}/{name}", file.bytes, file.sha256))
                done.rows += 1
                yield to_line({"file_name": name, "file_index": index, **row})

    sums.add(_write_lines(folder, layout.data_file(kind), lines(), root))
    return done


def _write_text(folder: Path, name: str, text: str, root: Path | None = None) -> FileSum:
    return _write_lines(folder, name, [text], root)


def _write_lines(
    folder: Path, name: str, lines: Iterable[str], root: Path | None = None
) -> FileSum:
    """Write `lines` to a new file (through safefs, like every write: docs/SECURITY.md, though
    the folder is new), hashing them as they go. A sink (docs/SECURITY.md): a record may quote
    a server that echoed the token, so each line is redacted (no secret spans a line)."""
    redact = secrets_in_use().document
    digest = hashlib.sha256()
    size = 0
    with safefs.create_new(folder / name, root or folder) as out:
        for line in lines:
            data = redact(line).encode("utf-8")
            out.write(data)
            digest.update(data)
            size += len(data)
    path = (folder / name).relative_to(root or folder).as_posix()
    return FileSum(path, size, digest.hexdigest())


def _write_export_record(path: Path, card: Card, sums: _Sums) -> None:
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
    redact = secrets_in_use().document  # a sink, like `_write_lines`, line by line
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


def _target_text(target: Mapping[str, str]) -> str:
    return target.get("model") or target.get("deployment") or target.get("version") or "?"


def _link(source: Path, dest: Path, root: Path) -> None:
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
