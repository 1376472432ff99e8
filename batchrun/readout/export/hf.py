"""The `hf` folder: one subfolder per job, its card, and the record `batchrun verify` checks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

from batchrun import safefs
from batchrun.errors import (
    ManifestError,
    StorageError,
    UsageError,
    secrets_in_use,
)
from batchrun.manifest.keytable import JUDGED_FLAGS, KeyTable, file_checks
from batchrun.manifest.reader import KeyState
from batchrun.manifest.records import (
    MALFORMED,
    UNKNOWN_API,
    Api,
    Record,
    Status,
)
from batchrun.manifest.state import State, key_state
from batchrun.readout.export import layout
from batchrun.readout.export.card import Card, HfJob, dataset_card
from batchrun.readout.export.formats import BATCH, jsonl_line
from batchrun.readout.export.layout import EXPORT_FORMAT, EXPORT_RECORD
from batchrun.readout.export.rows import row_of, table_columns
from batchrun.readout.export.twocores import write_parts

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


def api_of(api: Api | None) -> tuple[str, bool | None]:
    """The API a record says it ran on, and whether that was the sandbox (None: not known, for
    a record written before batchrun kept it: shown as "unknown", never guessed)."""
    if api is None:
        return UNKNOWN_API, None
    return api.url, api.sandbox


def left_out_reason(recorded: KeyState | Record, run_dir: Path) -> str | None:
    """Why a recorded prediction stays out of a dataset; None when it goes in.

    `key_state`'s rule: only a succeeded prediction whose files are all as recorded (size and
    sha256) is exported, so a file changed after the run never passes for the model's output.
    """
    # Judged as the kind of API that made it: a sandbox result's files are checked too (the
    # card and `verify` say it is the sandbox's).
    state = key_state(recorded, run_dir, sandbox=bool(recorded.sandbox))
    if state is State.IN_FLIGHT:
        return STILL_IN_FLIGHT
    if state is State.FAILED:
        return str(recorded.status)
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
    export, which the new one replaces in one step. The rows are checked and counted from the
    table (`_sort_out`), then each record's line is read back to write its job's rows (on two
    cores for a job of text: `twocores.write_parts`); the files' sums spooled to disk until the
    export record is written."""
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


# What `hf` names files after: the 16 hex characters of a key (planner/keys.py), or at least
# nothing that could be a path. A manifest someone edited may say anything.
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _files_inside(key: str, recorded: KeyState, run_dir: Path) -> None:
    """A manifest someone edited may name /home/me/.ssh/id_rsa as an output file: a dataset
    (often uploaded) takes only regular files inside the run folder (docs/SECURITY.md)."""
    if recorded.status != Status.SUCCEEDED or recorded.missing:
        return  # left out of the dataset anyway
    if not _KEY_NAME.fullmatch(key):
        # The key names the dataset's files: `../../../outside/x` would leave `--to`.
        raise ManifestError(
            f"{run_dir}: the manifest names the key {key[:80]!r}, which is not a key"
            " batchrun makes; nothing was exported"
        )
    for path, _, _ in recorded.files:
        source = run_dir / path
        if not safefs.is_inside(source, run_dir) or not source.is_file():
            raise ManifestError(
                f"{run_dir}: the manifest names {path!r} for key {key}, "
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
    """One pass over the rows, from the table (a line is read back only for the files of a key
    beyond those it keeps): each checked (`_files_inside`: a ManifestError before anything is
    written), counted on the card, and, if it goes in, its row and the kinds of its files kept
    under its job."""
    card.missing = [(key, job, NOT_STARTED) for key, job in card.not_started]
    key_of, job_of, gone_keys = table.rows.key_of, table.job_of, card.gone
    status, flags, api, job, files = table.status, table.flags, table.api, table.job, table.files
    # Counted by the table's numbers for an API and a job, in the order rows first show them,
    # and named at the end (one API, one job a number: `KeyTable.apis`, `jobs`).
    apis: Counter[int] = Counter()
    by_job: dict[int, tuple[array[int], Counter[str]]] = {}
    sandbox = [bool(made and made.sandbox) for made in table.apis.values]
    # A key without files is judged by its status, its flags and its API alone (`key_state`:
    # nothing else of it is read), so by one KeyState of its kind, asked once.
    fileless: dict[tuple[int, int, int], tuple[KeyState, str | None]] = {}
    here = here_gone = 0
    for row in rows:
        key = key_of(row)
        if files[row]:
            recorded = table.key_state(key, row)  # a succeeded key's files with it
            reason = left_out_reason(recorded, run_dir)
        else:
            kind = (status[row], flags[row] & JUDGED_FLAGS, api[row])
            known = fileless.get(kind)
            if known is None:
                recorded = table.key_state(key, row)
                known = fileless[kind] = (recorded, left_out_reason(recorded, run_dir))
            recorded, reason = known
        _files_inside(key, recorded, run_dir)
        gone = key in gone_keys
        if reason is not None:
            card.left_out[reason] += 1
            if not gone:
                card.missing.append((key, job_of(row), reason))
            continue
        if gone:
            here_gone += 1
        else:
            here += 1
        apis[api[row]] += 1
        if sandbox[api[row]]:
            card.sandbox.append((key, job_of(row), api_of(table.api_of(row))[0]))
        kept = by_job.get(job[row])
        if kept is None:
            kept = by_job[job[row]] = (array("I"), Counter())
        kept[0].append(row)
        if recorded.files:
            kept[1].update(posixpath.splitext(path)[1].lower() for path, _, _ in recorded.files)
    card.here += here
    card.here_gone += here_gone
    for place, count in apis.items():
        card.apis[api_of(table.apis.values[place])] += count
    return {table.jobs.values[place]: kept for place, kept in by_job.items()}


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
    # The rows' columns: a key without files makes no row of a job of files.
    with_rows = rows if kind == "json" else [row for row in rows if table.files[row]]
    columns = (["file_name", "file_index"] if kind != "json" else []) + table_columns(
        table, with_rows
    )
    to_line = jsonl_line(columns)

    def part(some: Sequence[int], out: IO[str], first: bool) -> HfJob:
        """Some of the job's rows written to `out`: what they hold, counted."""
        done = HfJob(job, kind)
        lines: list[str] = []
        for at, line in table.lines_of(some):
            target, version, files = _fields(table, at, line)
            done.predictions += 1
            done.targets.add(_target_text(target))
            if version:
                done.versions[version] += 1
            row = row_of(table, at, line)
            if kind == "json":
                done.rows += 1
                lines.append(to_line(row))
            for index, (path, size, sha256) in enumerate(files if kind != "json" else ()):
                name = f"{table.rows.key_of(at)}-{index}{posixpath.splitext(path)[1].lower()}"
                _link(run_dir / path, folder / name, root)
                # As recorded: `left_out_reason` has just checked the bytes against the record.
                sums.add(FileSum(f"{folder.name}/{name}", size, sha256))
                done.rows += 1
                lines.append(to_line({"file_name": name, "file_index": index, **row}))
            if len(lines) >= BATCH:
                out.write("".join(lines))  # one write a batch (each is redacted, a system call)
                lines.clear()
        out.write("".join(lines))
        return done

    with _new_file(folder, layout.data_file(kind), root) as out:
        if kind == "json":
            # A worker may write part of it: only a job of text, whose rows add nothing but
            # their text (a job of files adds each file's sum, kept by this process; it is
            # bound by hashing its files, `_sort_out`, not by making its rows).
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


class _Sink:
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
def _new_file(folder: Path, name: str, root: Path | None = None) -> Iterator[_Sink]:
    """A new file of the export (through safefs, like every write: docs/SECURITY.md, though
    the folder is new); its path in `EXPORT_RECORD` is relative to `root`."""
    path = folder / name
    with safefs.create_new(path, root or folder) as out:
        yield _Sink(out, path.relative_to(root or folder).as_posix())


def _write_text(folder: Path, name: str, text: str) -> FileSum:
    with _new_file(folder, name) as out:
        out.write(text)
    return out.file_sum()


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
    redact = secrets_in_use().document  # a sink, as `_Sink` is, line by line
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
