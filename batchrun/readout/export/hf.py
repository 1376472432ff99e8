"""The `hf` folder: one subfolder per job, its card, and the record `batchrun verify` checks."""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, cast

from batchrun import safefs
from batchrun.errors import StorageError, UsageError
from batchrun.manifest.keytable import KeyTable, file_checks
from batchrun.manifest.records import MALFORMED
from batchrun.readout.export import layout
from batchrun.readout.export.card import Card, HfJob, dataset_card
from batchrun.readout.export.files import (
    FileSum,
    Sums,
    link,
    new_file,
    write_export_record,
    write_text,
)
from batchrun.readout.export.formats import BATCH, jsonl_line
from batchrun.readout.export.inclusion import sort_out
from batchrun.readout.export.layout import EXPORT_RECORD
from batchrun.readout.export.rows import row_of, table_columns
from batchrun.readout.export.twocores import write_parts


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
    export, which the new one replaces in one step. The rows are checked and counted from the
    table (`sort_out`), then each record's line is read back to write its job's rows (on two
    cores for a job of text: `twocores.write_parts`); the files' sums spooled to disk until the
    export record is written."""
    dest = Path(os.path.abspath(dest))
    replacing = _replaceable(dest, force)
    by_job = sort_out(table, rows, run_dir, card)  # before anything is written
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        with tempfile.TemporaryFile("w+", encoding="utf-8", dir=dest.parent) as spool:
            sums = Sums(spool)
            jobs = [
                _write_job(job, table, kept, kinds, run_dir, building, sums)
                for job, (kept, kinds) in by_job.items()
            ]
            sums.add(write_text(building, "README.md", dataset_card(jobs, card)))
            write_export_record(building / EXPORT_RECORD, card, sums)
        if replacing:
            shutil.rmtree(safefs.swap_folder(building, dest), ignore_errors=True)
        else:
            if dest.exists():
                dest.rmdir()
            os.replace(building, dest)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise StorageError(f"cannot write {dest}: {error.strerror or error}") from None
    except BaseException:  # a record that does not read back, Ctrl-C: no half dataset is left
        shutil.rmtree(building, ignore_errors=True)
        raise
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


def _write_job(
    job: str,
    table: KeyTable,
    rows: Sequence[int],
    extensions: Counter[str],
    run_dir: Path,
    root: Path,
    sums: Sums,
) -> HfJob:
    folder = root / layout.folder_name(job)
    folder.mkdir()
    kind = layout.kind(extensions)
    # The rows' columns: a key without files makes no row of a job of files.
    with_rows = rows if kind == "json" else [row for row in rows if table.files[row]]
    columns = (["file_name", "file_index"] if kind != "json" else []) + table_columns(
        table, with_rows
    )
    to_line = jsonl_line(columns)

    def part(some: Sequence[int], out: IO[str], first: bool) -> HfJob:
        """Some of the job's rows written to `out`: what they hold, counted."""
        done = HfJob(job, kind)
        targets, versions = done.targets, done.versions
        lines: list[str] = []
        for at, line in table.lines_of(some):
            get = line.get
            target, files = get("target"), get("files") or ()
            if files or (target and type(target) is not dict):
                # Files to check, or a target not of its usual shape: read as a record reads
                # them. A row of text with its target (most rows) needs neither copied.
                target, _, files = _fields(table, at, line)
            targets.add(_target_text(target) if target else "?")
            version = get("version")
            if version:
                versions[version] += 1
            row = row_of(table, at, line)
            if kind == "json":
                lines.append(to_line(row))
            else:
                for index, (path, size, sha256) in enumerate(files):
                    name = f"{table.rows.key_of(at)}-{index}{posixpath.splitext(path)[1].lower()}"
                    link(run_dir / path, folder / name, root)
                    # As recorded: `left_out_reason` has just checked the bytes against the record.
                    sums.add(FileSum(f"{folder.name}/{name}", size, sha256))
                    done.rows += 1
                    lines.append(to_line({"file_name": name, "file_index": index, **row}))
            if len(lines) >= BATCH:
                out.write("".join(lines))  # one write a batch (each is redacted, a system call)
                lines.clear()
        out.write("".join(lines))
        done.predictions = len(some)
        if kind == "json":
            done.rows = len(some)
        return done

    with new_file(folder, layout.data_file(kind), root) as out:
        if kind == "json":
            # A worker may write part of it: only a job of text, whose rows add nothing but
            # their text (a job of files adds each file's sum, kept by this process; it is
            # bound by hashing its files, `sort_out`, not by making its rows).
            parts = write_parts(rows, cast(IO[str], out), part, root.parent)
        else:
            parts = [part(rows, cast(IO[str], out), True)]
    sums.add(out.file_sum())
    done = HfJob(job, kind)
    for counted in parts:
        done.rows += counted.rows
        done.predictions += counted.predictions
        done.versions.update(counted.versions)  # in the order they first came
        done.targets |= counted.targets
    return done


def _fields(table: KeyTable, row: int, line: dict[str, Any]) -> tuple[dict[str, str], Any, Any]:
    """A row's target, version and files (path, size, sha256) from its line, read as
    `Record.from_json` reads them."""
    try:
        return (
            dict(line.get("target") or {}),
            line.get("version"),
            file_checks(line.get("files") or ()),
        )
    except MALFORMED:
        table.record_of(row, line)  # malformed: the ManifestError reading it back gives
        raise


def _target_text(target: Mapping[str, str]) -> str:
    return target.get("model") or target.get("deployment") or target.get("version") or "?"
