"""A run as a dataset: one row per prediction, as JSON Lines, CSV or a Hugging Face folder.

    rows = [export_row(line) for line in lines]         # flat dicts, one per record line
    write_jsonl(rows, handle); write_csv(rows, handle)   # to a stream `commands/` opened
    write_export(table, rows, handle, columns, "jsonl")  # a table's rows, on two cores
    write_hf(table, rows, run_dir, dest, card)           # a folder `datasets` loads as it is

Each row: key, job, every variable as a column of its own (a row value's fields as `row.prompt`),
input, status, output (a language model's text; other outputs as JSON text), files, version,
prediction id, the API it ran on, predict time and token counts, error.

The `hf` folder has one subfolder per job. A job whose predictions made files is an
`imagefolder` (or `audiofolder`): its files, hard-linked from the run folder where the disk
allows (copied where not), and a `metadata.jsonl` naming each in `file_name`; one row per file,
since a dataset row holds one image. A job of text is `data.jsonl`. Only succeeded predictions
with every file as recorded go in. The dataset card `README.md` opens with metadata (one config
per job, so `load_dataset(folder, job)` picks one; the license; the provenance), then says how
many planned predictions are missing and why. `batchrun-export.jsonl` records what
`batchrun verify` checks the folder against (docs/export.md).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import itertools
import json
import os
import posixpath
import re
import shutil
import signal
import tempfile
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import IO, Any, NoReturn, TypeVar

import yaml

from batchrun import safefs
from batchrun.errors import (
    BatchrunError,
    ManifestError,
    StorageError,
    UsageError,
    secrets_in_use,
)
from batchrun.humanize import printable
from batchrun.manifest.records import (
    UNKNOWN_API,
    Api,
    Record,
    Status,
    estimated_cost_of,
    parse_status,
    utcnow,
)
from batchrun.manifest.state import State, key_state
from batchrun.manifest.table import KeyTable
from batchrun.output_files import joined_output
from batchrun.planner.columns import flat_vars
from batchrun.planner.lock import lock_path, read_lock
from batchrun.readout import sheet
from batchrun.spec.load import Spec
from batchrun.spec.revision import GitState, git_state

T = TypeVar("T")

# The columns every row has, in this order; variables come after `job`.
HEAD_COLUMNS = ("key", "job")
TAIL_COLUMNS = (
    "input",
    "status",
    "output",
    "files",
    "version",
    "prediction_id",
    "api",
    "predict_time",
    "input_token_count",
    "output_token_count",
    "cost",
    "error",
)
FIXED_COLUMNS = frozenset((*HEAD_COLUMNS, *TAIL_COLUMNS, "file_name", "file_index"))
# The metric names Replicate's language models report token counts under.
TOKEN_METRICS = ("input_token_count", "output_token_count")
# What `datasets` loads as pictures and sounds (its imagefolder and audiofolder extensions).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tiff"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a"})


def variable_column(name: str) -> str:
    """A variable's column: its name, or `var.NAME` where a fixed column has that name."""
    return f"var.{name}" if name in FIXED_COLUMNS else name


def export_row(line: Mapping[str, Any]) -> dict[str, Any]:
    """One prediction as a flat row (see the module docstring), from its record's line in the
    manifest (read back, `KeyTable.lines_of`), each field read as `Record.from_json` reads it:
    a million rows are made without a `Record` each."""
    get = line.get
    row: dict[str, Any] = {"key": str(line["key"]), "job": str(line["job"])}
    for name, value in flat_vars(dict(get("vars") or {})).items():
        row[variable_column(name)] = value
    metrics = dict(get("metrics") or {})
    predict_time = metrics.get("predict_time")
    api = Api.from_json(get("api"))
    row.update(
        input=dict(get("input") or {}),
        status=parse_status(line["status"]),
        output=output_text(joined_output(get("output"))),
        files=[str(file["path"]) for file in get("files") or ()],
        version=get("version"),
        prediction_id=get("prediction_id"),
        # {url, sandbox}, as status --csv has it; None: written before records kept it.
        api=api.to_json() if api is not None else None,
        predict_time=predict_time if _is_number(predict_time) else None,
    )
    for name in TOKEN_METRICS:
        value = metrics.get(name)
        row[name] = value if _is_number(value) else None
    # USD, estimated from the user's prices (docs/cost.md); None for a job without a price.
    row["cost"] = estimated_cost_of(line)
    row["error"] = get("error")
    return row


def output_text(output: Any) -> str | None:
    """An output as one text: a language model's text as it is, anything else as JSON."""
    if output is None or isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int or (isinstance(value, int | float) and kind is not bool)


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every column the rows have: key, job, the variables in first-seen order, the rest."""
    variables: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in FIXED_COLUMNS:
                variables.setdefault(name, None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]


def table_columns(table: KeyTable, rows: Iterable[int]) -> list[str]:
    """`columns_of` the rows of these table rows (loaded with `variables=True`), from the names
    of each row's variables, shared by many rows: a row's line is read again only where a
    variable's value is a mapping (its fields are columns) that brings a column no row before
    it had. That column's place comes from the line itself: a mapping equal to another as JSON,
    whose value the table keeps once, may list its fields in another order."""
    names = table.names.values
    mappings = {name for name, values in table.variables.items() if _holds_mapping(values.raws)}
    variables: dict[str, None] = {}
    if not mappings:  # each set of names once, in the order rows first show it
        for group in dict.fromkeys(table.columns[row] for row in rows):
            variables.update(dict.fromkeys(map(variable_column, names[group])))
        return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]
    plain: set[int] = set()  # sets of names without a mapping-valued variable, seen already
    for row in rows:
        group = table.columns[row]
        if group in plain:
            continue
        if mappings.isdisjoint(names[group]):
            plain.add(group)
            variables.update(dict.fromkeys(map(variable_column, names[group])))
            continue
        if all(variable_column(name) in variables for name in flat_vars(table.vars_of(row))):
            continue
        for name in flat_vars(table.record_at(row).vars):
            variables.setdefault(variable_column(name), None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]


def _holds_mapping(raws: Sequence[Any]) -> bool:
    """Whether a variable takes a value `flat_vars` spreads over columns (a mapping, not empty)."""
    return not isinstance(raws, array) and any(isinstance(raw, Mapping) and raw for raw in raws)


def write_jsonl(
    rows: Iterable[Mapping[str, Any]], handle: IO[str], columns: Sequence[str] | None = None
) -> int:
    """One JSON object per row, every column in every row (None where a row lacks a variable).
    `columns`: known already (`table_columns`), so the rows may stream; else the rows' own."""
    if columns is None:
        rows = list(rows)
        columns = columns_of(rows)
    count = 0
    for lines in _batches(map(_jsonl_line(columns), rows)):
        handle.write("".join(lines))  # one write a batch (each is redacted, a system call)
        count += len(lines)
    return count


# json.dumps(row, ensure_ascii=False)'s text, its encoder made once (json.dumps makes one a
# call); rows read from JSON hold no cycle to look for.
_ROW_JSON = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
BATCH = 1000  # rows a write


def _jsonl_line(columns: Sequence[str]) -> Callable[[Mapping[str, Any]], str]:
    """A row as its JSON line: every column, in order, None where the row has none."""
    blank = dict.fromkeys(columns)

    def line(row: Mapping[str, Any]) -> str:
        full = blank.copy()
        full.update(row)  # the columns keep their places
        if len(full) != len(blank):  # a column the row has and `columns` not: left out
            full = {column: full[column] for column in columns}
        return _ROW_JSON(full) + "\n"

    return line


def _batches(items: Iterable[T]) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(itertools.islice(it, BATCH)):
        yield batch


def write_csv(
    rows: Iterable[Mapping[str, Any]],
    handle: IO[str],
    columns: Sequence[str] | None = None,
    *,
    header: bool = True,
) -> int:
    """A header and one line per row; nested values (and the list of files, whose paths may
    hold spaces) as JSON. `columns` as for `write_jsonl`; `header`: False for rows that go on
    from rows written before."""
    if columns is None:
        rows = list(rows)
        columns = columns_of(rows)
    lines = ([row.get(c) for c in columns] for row in rows)
    return sheet.write_csv(handle, columns if header else None, lines)


_STOPPING = {signal.SIGINT, signal.SIGTERM}
# From how many rows an export writes on two cores (`write_export`): below, a worker costs more
# than it saves.
TWO_CORES_FROM = 20_000
COPY_CHUNK = 1 << 20


def write_export(
    table: KeyTable,
    rows: Sequence[int],
    handle: IO[str],
    columns: Sequence[str],
    fmt: str,
    spool_in: Path | None = None,
) -> int:
    """The rows of these table rows (`export_row` of each record's line) as JSON Lines or CSV
    (`fmt`) with these columns; how many. Where the system forks (Linux) and this process
    has a second core and no thread, a worker process writes the second half of the rows to a
    temporary file (in `spool_in`: the destination's folder, not a /tmp that may be memory)
    while this one writes the first; that is copied after it (the same bytes, in the same
    order, redacted by `handle` as the rest). Should the worker not finish, this process
    writes its half itself (an error in a record then shows as it would)."""
    spool = _spool(spool_in) if len(rows) >= TWO_CORES_FROM and _second_core() else None
    with _collector_paused():
        if spool is None:
            return _write_part(table, rows, handle, columns, fmt, first=True)
        with spool:
            return _write_halves(table, rows, handle, columns, fmt, spool)


def _write_halves(
    table: KeyTable,
    rows: Sequence[int],
    handle: IO[str],
    columns: Sequence[str],
    fmt: str,
    spool: IO[bytes],
) -> int:
    half = len(rows) // 2
    # Ctrl-C and SIGTERM wait until each process is where it handles them: the worker in
    # `_work`, this one in the `try` that ends the worker with it.
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        worker = os.fork()
    except OSError:  # no process to spare: this one writes them all
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        return _write_part(table, rows, handle, columns, fmt, first=True)
    if worker == 0:  # pragma: no cover (the worker: coverage does not follow a fork)
        _work(table, rows[half:], spool, columns, fmt, unblocked)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        count = _write_part(table, rows[:half], handle, columns, fmt, first=True)
        _, status = os.waitpid(worker, 0)
        worker = 0
        if status != 0:
            return count + _write_part(table, rows[half:], handle, columns, fmt, first=False)
        spool.seek(0)
        _copy_lines(spool, handle)
        return count + len(rows) - half
    finally:
        if worker:  # Ctrl-C, or an error here: the worker ends with this process
            os.kill(worker, signal.SIGKILL)
            os.waitpid(worker, 0)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cycle collector paused while rows are made (in the worker too, which inherits it):
    what a row made from JSON leaves holds no cycle, so it is freed as it goes, and the passes
    the collector would make over a million rows' objects (a tenth of an export) are saved."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _spool(folder: Path | None) -> IO[bytes] | None:
    try:
        return tempfile.TemporaryFile(dir=folder)
    except OSError:  # a folder that takes no file (a special file's): one process does it all
        return None


def _second_core() -> bool:
    return (
        hasattr(os, "sched_getaffinity")
        and hasattr(os, "fork")
        and len(os.sched_getaffinity(0)) > 1
        and threading.active_count() == 1
    )


def _work(
    table: KeyTable,
    rows: Sequence[int],
    spool: IO[bytes],
    columns: Sequence[str],
    fmt: str,
    unblocked: Iterable[int],
) -> NoReturn:
    """The worker's part: write its rows to `spool`, then end (never return to the command,
    whatever happens: Ctrl-C too)."""
    code = 1
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        gc.freeze()  # the objects it inherits are never collected: their pages stay shared
        with open(spool.fileno(), "w", encoding="utf-8", newline="", closefd=False) as out:
            _write_part(table, rows, out, columns, fmt, first=False)
        code = 0
    finally:
        os._exit(code)


def _write_part(
    table: KeyTable,
    rows: Sequence[int],
    handle: IO[str],
    columns: Sequence[str],
    fmt: str,
    *,
    first: bool,
) -> int:
    made = (export_row(line) for _, line in table.lines_of(rows))
    if fmt == "jsonl":
        return write_jsonl(made, handle, columns)
    return write_csv(made, handle, columns, header=first)


def _copy_lines(spool: IO[bytes], handle: IO[str]) -> None:
    """The spool's text into `handle`, whole lines a write (a secret spans no line, so each
    write is redacted whole)."""
    rest = b""
    while data := spool.read(COPY_CHUNK):
        data = rest + data
        end = data.rfind(b"\n") + 1
        if end:
            handle.write(data[:end].decode("utf-8"))
        rest = data[end:]
    if rest:
        handle.write(rest.decode("utf-8"))


# The file of an `hf` export that `batchrun verify` checks it against: a header line (counts and
# provenance), then a line per file (its size and sha256), per planned prediction that is not
# here (and why), and per prediction here that the sandbox made.
EXPORT_RECORD = "batchrun-export.jsonl"
EXPORT_FORMAT = 1
# Why a planned prediction is not in a dataset, besides its status when it failed.
NOT_STARTED = "not started"
STILL_IN_FLIGHT = "in flight"
FILES_CHANGED = "files missing or changed"
# What the card says of what a record does not name (its API, before records kept it) or an
# export does not know (how many predictions a spec that no longer loads planned).
UNKNOWN = UNKNOWN_API
# A value from a manifest or an API is cut to this many characters in the card: a version id
# (64) or a URL fits; a page of text pasted into an edited manifest does not.
CARD_TEXT_LIMIT = 200
# PyYAML folds lines longer than this; a card's values are cut far shorter, so none is folded.
YAML_WIDTH = 4096


@dataclass(frozen=True)
class Provenance:
    """Where a dataset came from, as its card's metadata and `EXPORT_RECORD` say."""

    spec: str | None  # the spec's path in its git repository, else its file name
    spec_sha256: str | None
    git: GitState | None
    lock: dict[str, Any] | None  # {path, sha256, pins: {model: version}}; None: no lock
    license: str | None
    batchrun_version: str
    exported_at: str

    def to_json(self) -> dict[str, Any]:
        git = self.git
        return {
            "spec": {"path": self.spec, "sha256": self.spec_sha256} if self.spec else None,
            "git": {"commit": git.commit, "dirty": git.dirty} if git else None,
            "lock": self.lock,
            "license": self.license,
            "batchrun_version": self.batchrun_version,
            "exported_at": self.exported_at,
        }


def provenance(spec: Spec | None, headers: Sequence[Mapping[str, Any]], version: str) -> Provenance:
    """What an export records of its origin. A path is shown relative to its git repository (or
    as a file name): a published card should not carry the exporter's home folder."""
    if spec is None:
        header = next((h for h in headers if h.get("spec")), {})
        named = PurePath(str(header["spec"])).name if header else None
        sha = header.get("spec_sha256") if header else None
        return Provenance(named, sha, None, None, None, version, utcnow())
    git = git_state(spec.path)
    shown = git.path if git else spec.path.name
    return Provenance(
        spec=shown,
        spec_sha256=spec.sha256,
        git=git,
        lock=_lock_of(spec, posixpath.dirname(shown)),
        license=spec.license,
        batchrun_version=version,
        exported_at=utcnow(),
    )


def _lock_of(spec: Spec, folder: str) -> dict[str, Any] | None:
    path = lock_path(spec.path)
    try:
        # Only a regular file in the spec's folder: a lock that is a link elsewhere is not
        # hashed into a card that may be published.
        with safefs.open_regular(path, spec.folder) as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
    try:
        lock = read_lock(spec.path)
        pins = {p.model: p.version for p in lock.pins.values()} if lock else {}
    except BatchrunError:
        pins = {}  # a lock that does not read is still named, with its sha256
    return {
        "path": posixpath.join(folder, path.name),
        "sha256": digest,
        "pins": pins,
    }


@dataclass
class Card:
    """What the dataset card says: given by the caller, then counted by `write_hf`."""

    name: str
    provenance: Provenance
    planned: int | None = None  # how many predictions the spec plans; None: not known
    why_unplanned: str | None = None  # why that is not known
    not_started: Sequence[tuple[str, str]] = ()  # (key, job) planned and never recorded
    gone: frozenset[str] = frozenset()  # keys exported that the spec no longer plans (--all)
    # Counted while writing:
    here: int = 0  # planned predictions in the dataset
    here_gone: int = 0  # predictions in it the spec no longer plans
    left_out: Counter[str] = field(default_factory=Counter)  # reason → recorded, not exported
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (key, job, reason)
    apis: Counter[tuple[str, bool | None]] = field(default_factory=Counter)  # (url, sandbox)
    sandbox: list[tuple[str, str, str]] = field(default_factory=list)  # (key, job, url)

    @property
    def missing_reasons(self) -> Counter[str]:
        """Planned predictions not here, by why: not started, failed, in flight..."""
        return Counter(reason for _, _, reason in self.missing)

    def shortfall(self) -> str | None:
        """ "20 of the 100 planned predictions are here; missing: 80 not started", or None when
        none is missing (or the plan is not known)."""
        reasons = self.missing_reasons
        if self.planned is None or not reasons:
            return None
        why = ", ".join(f"{n:,} {reason}" for reason, n in reasons.most_common())
        return f"{self.here:,} of the {self.planned:,} planned predictions are here; missing: {why}"


@dataclass
class HfJob:
    """One job's part of an `hf` export."""

    job: str
    kind: str  # imagefolder, audiofolder or json
    rows: int = 0
    predictions: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    targets: set[str] = field(default_factory=set)


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
    folder = root / _folder_name(job)
    folder.mkdir()
    kind = _kind(extensions)
    done = HfJob(job, kind)
    # The rows' columns: a key without files makes no row of a job of files.
    with_rows = rows if kind == "json" else [row for row in rows if table.files[row]]
    columns = (["file_name", "file_index"] if kind != "json" else []) + table_columns(
        table, with_rows
    )

    to_line = _jsonl_line(columns)

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

    sums.add(_write_lines(folder, _data_file(kind), lines(), root))
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


def _loader(kind: str) -> str:
    return kind if kind in ("imagefolder", "audiofolder") else "json"


def _data_file(kind: str) -> str:
    return "data.jsonl" if kind == "json" else "metadata.jsonl"


def _kind(extensions: Counter[str]) -> str:
    if not extensions:
        return "json"
    if set(extensions) <= IMAGE_EXTENSIONS:
        return "imagefolder"
    if set(extensions) <= AUDIO_EXTENSIONS:
        return "audiofolder"
    # Other files (video, text files, a mix): the rows name them in `file_name`, as plain text.
    return "files"


def _folder_name(job: str) -> str:
    # The schema allows job ids of letters, digits, _ . - starting with a letter or digit, so
    # an id is a safe folder name; a manifest edited by hand is made safe here all the same.
    safe = "".join(c if c.isalnum() or c in "_.-" else "_" for c in job).lstrip(".")
    return safe or "job"


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


def card_value(value: object) -> str:
    """Any value that goes into a dataset card, as one line of plain text: control characters
    (newlines too, so nothing can end the metadata block or start a heading) as spaces, cut to
    `CARD_TEXT_LIMIT` characters. Every value from a spec, a manifest or an API passes here."""
    return printable(str(value), CARD_TEXT_LIMIT).strip()


# Characters that mean something to Markdown (or to the HTML it may hold) within a line.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#|!~&])")


def card_markdown(value: object) -> str:
    """`card_value` for the card's Markdown text: every Markdown and HTML character escaped."""
    return _MARKDOWN.sub(r"\\\1", card_value(value))


def _plain(value: Any) -> Any:
    """A metadata structure with every text in it through `card_value` (YAML quotes the rest)."""
    if isinstance(value, str):
        return card_value(value)
    if isinstance(value, Mapping):
        return {card_value(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def card_metadata(jobs: Sequence[HfJob], card: Card) -> dict[str, Any]:
    """The card's YAML metadata: Hugging Face's fields (license, configs), then batchrun's."""
    meta: dict[str, Any] = {}
    if card.provenance.license:
        meta["license"] = card.provenance.license
    meta["pretty_name"] = card.name
    # `datasets` picks one loader for a whole folder (by the first config's files): when every
    # job is images (or sounds) it is that folder loader; otherwise every config names its
    # JSON Lines file and loads as `json`, an image job's rows naming their files.
    folders = _uniform_folder_loader(jobs)
    configs = []
    for index, job in enumerate(jobs):
        config: dict[str, Any] = {"config_name": job.job}
        if index == 0:
            config["default"] = True
        pattern = "**" if folders else _data_file(job.kind)
        config["data_files"] = [{"split": "train", "path": f"{_folder_name(job.job)}/{pattern}"}]
        configs.append(config)
    meta["configs"] = configs
    meta["batchrun"] = {
        **card.provenance.to_json(),
        "api": [
            {"url": url, "sandbox": UNKNOWN if sandbox is None else sandbox, "predictions": n}
            for (url, sandbox), n in card.apis.items()
        ],
        "models": [
            {"job": job.job, "targets": sorted(job.targets), "versions": dict(job.versions)}
            for job in jobs
        ],
        "predictions": {
            "planned": card.planned if card.planned is not None else UNKNOWN,
            "here": card.here,
            "missing": dict(card.missing_reasons),
            **({"not_in_spec": card.here_gone} if card.here_gone else {}),
        },
        "verify": EXPORT_RECORD,
    }
    plain: dict[str, Any] = _plain(meta)
    return plain


def _uniform_folder_loader(jobs: Sequence[HfJob]) -> str | None:
    loaders = {_loader(job.kind) for job in jobs}
    loader = loaders.pop() if len(loaders) == 1 else None
    return loader if loader in ("imagefolder", "audiofolder") else None


def dataset_card(jobs: Iterable[HfJob], card: Card) -> str:
    """The README.md of an `hf` export: metadata for `datasets` and the Hub, then what the data
    is, how much of the plan it holds, and where it came from."""
    jobs = list(jobs)
    meta = yaml.safe_dump(
        card_metadata(jobs, card), sort_keys=False, allow_unicode=True, width=YAML_WIDTH
    )
    lines = ["---", meta.rstrip("\n"), "---", "", f"# {card_markdown(card.name)}", ""]
    spec = card.provenance.spec
    lines.append(
        f"Predictions made by [batchrun](https://pypi.org/project/batchrun/) "
        f"{card_markdown(card.provenance.batchrun_version)}"
        + (f" from the spec {card_markdown(spec)}." if spec else ".")
    )
    folders = _uniform_folder_loader(jobs)
    lines += [
        "",
        "| job | loads as | predictions | rows | target | versions |",
        "|---|---|---:|---:|---|---|",
    ]
    for job in jobs:
        versions = ", ".join(
            f"{card_markdown(v[:12])} ({n})" for v, n in job.versions.most_common()
        )
        targets = ", ".join(card_markdown(t) for t in sorted(job.targets))
        loads = folders or "json"
        lines.append(
            f"| {card_markdown(job.job)} | {loads} | {job.predictions:,} | {job.rows:,} "
            f"| {targets} | {versions or '—'} |"
        )
    lines += ["", *_completeness(card), "", *_origin(card), ""]
    lines += [
        'Load one job with `datasets.load_dataset("PATH", "JOB")`, or a folder directly with',
        '`load_dataset("imagefolder", data_dir="PATH/JOB")` (`"json"` for a text job).',
    ]
    if not folders and any(job.kind != "json" for job in jobs):
        lines += [
            "Jobs of different kinds share this folder, so each loads as JSON, an image job's",
            "rows naming their files in `file_name`; `imagefolder` with `data_dir` decodes them.",
        ]
    lines += [
        "",
        f"`batchrun verify PATH` checks that every file is as {EXPORT_RECORD} records it.",
        "",
    ]
    return "\n".join(lines)


def _completeness(card: Card) -> list[str]:
    """How much of the plan is here: never "all" unless every planned prediction is."""
    lines = ["## Completeness", ""]
    reasons = card.missing_reasons
    if card.planned is None:
        why = f" ({card_markdown(card.why_unplanned)})" if card.why_unplanned else ""
        lines.append(
            f"{card.here:,} predictions are here. How many the spec plans is not known{why}, "
            "so this card cannot say whether any are missing."
        )
    elif not reasons:
        lines.append(f"All {card.planned:,} planned predictions succeeded and are here.")
    else:
        lines.append(f"{card.shortfall()}.")
    if card.here_gone:
        lines.append(
            f"Also here: {card.here_gone:,} predictions the spec no longer plans (`--all`)."
        )
    made_up = len(card.sandbox)
    if made_up:
        lines.append(
            f"**{made_up:,} of these predictions were made by the sandbox**, batchrun's emulator: "
            "made-up outputs, not a model's."
        )
    return lines


def _origin(card: Card) -> list[str]:
    """Where the data came from, in words (the metadata above holds the same, for machines)."""
    made = card.provenance
    lines = ["## Provenance", ""]
    if made.spec:
        sha = f" (sha256 {card_markdown(made.spec_sha256)})" if made.spec_sha256 else ""
        lines.append(f"- spec: {card_markdown(made.spec)}{sha}")
    if made.git:
        dirty = ", with uncommitted changes" if made.git.dirty else ""
        lines.append(f"- git commit: {card_markdown(made.git.commit)}{dirty}")
    if made.lock:
        lines.append(f"- lock: {card_markdown(made.lock['path'])}")
    for (url, sandbox), n in card.apis.most_common():
        if sandbox is None:
            lines.append(f"- API: not recorded (records written before batchrun kept it): {n:,}")
        else:
            kind = "the sandbox: made-up outputs" if sandbox else "a real API"
            lines.append(f"- API: {card_markdown(url)} ({kind}): {n:,} predictions")
    lines.append(f"- license: {card_markdown(made.license) if made.license else 'not stated'}")
    lines.append(
        f"- exported {card_markdown(made.exported_at)} by batchrun "
        f"{card_markdown(made.batchrun_version)}"
    )
    return lines
