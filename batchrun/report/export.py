"""A run as a dataset: one row per prediction, as JSON Lines, CSV or a Hugging Face folder.

    rows = export_rows(records, run_dir)           # flat dicts, one per prediction
    write_jsonl(rows, dest); write_csv(rows, dest)
    write_hf(records, run_dir, dest, card=...)     # a folder `datasets.load_dataset` reads as is

Each row: key, job, every variable as a column of its own (a row value's fields as `row.prompt`),
input, status, output (a language model's text; other outputs as JSON text), files, version,
prediction id, predict time and token counts, error.

The `hf` folder has one subfolder per job. A job whose predictions made files is an
`imagefolder` (or `audiofolder`): its files, hard-linked from the run folder where the disk
allows (copied where not), and a `metadata.jsonl` naming each in `file_name`; one row per file,
since a dataset row holds one image. A job of text is `data.jsonl`. Only succeeded predictions
go in; the dataset card `README.md` counts the rest, names the spec and the model versions, and
declares one config per job, so `load_dataset(folder, job)` picks one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import posixpath
import shutil
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from batchrun import safefs
from batchrun.errors import ManifestError, StorageError, UsageError
from batchrun.manifest.records import Record, Status
from batchrun.planner.columns import flat_vars

FORMATS = ("jsonl", "csv", "hf")
# The columns every row has, in this order; variables come after `job`.
HEAD_COLUMNS = ("key", "job")
TAIL_COLUMNS = (
    "input",
    "status",
    "output",
    "files",
    "version",
    "prediction_id",
    "predict_time",
    "input_token_count",
    "output_token_count",
    "error",
)
FIXED_COLUMNS = frozenset((*HEAD_COLUMNS, *TAIL_COLUMNS, "file_name", "file_index"))
# The metric names Replicate's language models report token counts under.
TOKEN_METRICS = ("input_token_count", "output_token_count")
# What `datasets` loads as pictures and sounds (its imagefolder and audiofolder extensions).
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tiff"})
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".m4a"})
# Characters a spreadsheet takes as the start of a formula: such a CSV cell is prefixed with '
# so opening an export never runs what a prompt or a model wrote.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def variable_column(name: str) -> str:
    """A variable's column: its name, or `var.NAME` where a fixed column has that name."""
    return f"var.{name}" if name in FIXED_COLUMNS else name


def export_row(record: Record) -> dict[str, Any]:
    """One prediction as a flat row (see the module docstring)."""
    row: dict[str, Any] = {"key": record.key, "job": record.job}
    for name, value in flat_vars(record.vars).items():
        row[variable_column(name)] = value
    predict_time = record.metrics.get("predict_time")
    row.update(
        input=record.input,
        status=record.status,
        output=output_text(record.shown_output),
        files=[file.path for file in record.files],
        version=record.version,
        prediction_id=record.prediction_id,
        predict_time=predict_time if _is_number(predict_time) else None,
    )
    for name in TOKEN_METRICS:
        value = record.metrics.get(name)
        row[name] = value if _is_number(value) else None
    row["error"] = record.error
    return row


def output_text(output: Any) -> str | None:
    """An output as one text: a language model's text as it is, anything else as JSON."""
    if output is None or isinstance(output, str):
        return output
    return json.dumps(output, ensure_ascii=False, separators=(",", ":"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def columns_of(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every column the rows have: key, job, the variables in first-seen order, the rest."""
    variables: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in FIXED_COLUMNS:
                variables.setdefault(name, None)
    return [*HEAD_COLUMNS, *variables, *TAIL_COLUMNS]


def write_jsonl(rows: Sequence[Mapping[str, Any]], dest: Path | None) -> int:
    """One JSON object per row, every column in every row (None where a row lacks a variable)."""
    columns = columns_of(rows)
    with _output(dest) as handle:
        for row in rows:
            handle.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
    return len(rows)


def write_csv(rows: Sequence[Mapping[str, Any]], dest: Path | None) -> int:
    """A header and one line per row; nested values (and the list of files, whose paths may
    hold spaces) as JSON."""
    columns = columns_of(rows)
    with _output(dest, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return len(rows)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return "'" + text if text.startswith(FORMULA_START) else text


@contextlib.contextmanager
def _output(dest: Path | None, newline: str | None = None) -> Iterator[IO[str]]:
    """stdout for None; else a temporary file renamed over `dest` once all is written."""
    if dest is None:
        yield sys.stdout
        return
    # Through safefs: a link planted at the temporary's name is never written through.
    with safefs.atomic_writer(dest, None) as binary:
        handle = io.TextIOWrapper(binary, encoding="utf-8", newline=newline)
        yield handle
        handle.flush()
        handle.detach()  # the binary file stays open: atomic_writer closes and renames it


@dataclass
class Card:
    """What the dataset card says beside the counts."""

    name: str
    spec: str | None
    batchrun_version: str
    left_out: Counter[str] = field(default_factory=Counter)  # status → predictions not exported


@dataclass
class HfJob:
    """One job's part of an `hf` export."""

    job: str
    kind: str  # imagefolder, audiofolder or json
    rows: int = 0
    predictions: int = 0
    versions: Counter[str] = field(default_factory=Counter)
    targets: set[str] = field(default_factory=set)


def write_hf(records: Sequence[Record], run_dir: Path, dest: Path, card: Card) -> list[HfJob]:
    """The `hf` folder at `dest` (which must not exist, or be empty); built beside it, then
    renamed into place, so a reader never sees half a dataset."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"--to {dest}: already there and not an empty folder")
    _files_inside(records, run_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    building = dest.with_name(f".{dest.name}.{os.getpid()}.partial")
    try:
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        jobs = _write_jobs(records, run_dir, building, card)
        (building / "README.md").write_text(dataset_card(jobs, card), encoding="utf-8")
        if dest.exists():
            dest.rmdir()
        os.replace(building, dest)
    except OSError as error:
        shutil.rmtree(building, ignore_errors=True)
        raise StorageError(f"cannot write {dest}: {error.strerror or error}") from None
    return jobs


def _files_inside(records: Sequence[Record], run_dir: Path) -> None:
    """A manifest someone edited may name /home/me/.ssh/id_rsa as an output file: a dataset
    (often uploaded) takes only regular files inside the run folder (docs/SECURITY.md)."""
    for record in records:
        if record.status != Status.SUCCEEDED or record.missing:
            continue  # left out of the dataset anyway
        for file in record.files:
            source = run_dir / file.path
            if not safefs.is_inside(source, run_dir) or not source.is_file():
                raise ManifestError(
                    f"{run_dir}: the manifest names {file.path!r} for key {record.key}, "
                    "which is not a file inside the run folder; nothing was exported"
                )


def _write_jobs(records: Sequence[Record], run_dir: Path, root: Path, card: Card) -> list[HfJob]:
    by_job: dict[str, list[Record]] = {}
    for record in records:
        if record.status != Status.SUCCEEDED or record.missing:
            card.left_out[record.status if not record.missing else "missing files"] += 1
            continue
        by_job.setdefault(record.job, []).append(record)
    return [_write_job(job, kept, run_dir, root) for job, kept in by_job.items()]


def _write_job(job: str, records: list[Record], run_dir: Path, root: Path) -> HfJob:
    folder = root / _folder_name(job)
    folder.mkdir()
    extensions = Counter(
        posixpath.splitext(file.path)[1].lower() for record in records for file in record.files
    )
    kind = _kind(extensions)
    done = HfJob(job, kind)
    rows: list[dict[str, Any]] = []
    for record in records:
        done.predictions += 1
        done.targets.add(_target_text(record.target))
        if record.version:
            done.versions[record.version] += 1
        row = export_row(record)
        if kind == "json":
            rows.append(row)
            continue
        for index, file in enumerate(record.files):
            name = f"{record.key}-{index}{posixpath.splitext(file.path)[1].lower()}"
            _link(run_dir / file.path, folder / name)
            rows.append({"file_name": name, "file_index": index, **row})
    done.rows = len(rows)
    metadata = _data_file(kind)
    columns = (["file_name", "file_index"] if kind != "json" else []) + columns_of(rows)
    with (folder / metadata).open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps({c: row.get(c) for c in columns}, ensure_ascii=False) + "\n")
    return done


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


def _link(source: Path, dest: Path) -> None:
    # A hard link costs no space and keeps the run folder the one copy; across file systems
    # (or where links are refused) the file is copied.
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)


def dataset_card(jobs: Iterable[HfJob], card: Card) -> str:
    """The README.md of an `hf` export: configs for `datasets`, then what the data is."""
    jobs = list(jobs)
    lines = []
    # `datasets` picks one loader for a whole folder, so configs (one per job, for
    # `load_dataset(PATH, JOB)`) are declared only when every job loads the same way.
    if len({_loader(job.kind) for job in jobs}) == 1:
        lines += ["---", "configs:"]
        for index, job in enumerate(jobs):
            pattern = "**" if job.kind in ("imagefolder", "audiofolder") else _data_file(job.kind)
            lines += [f"- config_name: {json.dumps(job.job)}"]
            if index == 0:
                lines += ["  default: true"]
            path = json.dumps(f"{_folder_name(job.job)}/{pattern}")
            lines += ["  data_files:", "  - split: train", f"    path: {path}"]
        lines += ["---", ""]
    lines += [f"# {card.name}", ""]
    lines.append(
        f"Predictions made by [batchrun](https://pypi.org/project/batchrun/) "
        f"{card.batchrun_version}" + (f" from the spec `{card.spec}`." if card.spec else ".")
    )
    lines += [
        "",
        "| job | loads as | predictions | rows | target | versions |",
        "|---|---|---:|---:|---|---|",
    ]
    for job in jobs:
        versions = ", ".join(f"`{v[:12]}` ({n})" for v, n in job.versions.most_common()) or "—"
        targets = ", ".join(f"`{t}`" for t in sorted(job.targets))
        loads = _loader(job.kind)
        lines.append(
            f"| `{job.job}` | {loads} | {job.predictions:,} | {job.rows:,} "
            f"| {targets} | {versions} |"
        )
    lines.append("")
    if card.left_out:
        left = ", ".join(f"{n:,} {status}" for status, n in sorted(card.left_out.items()))
        lines.append(f"Only succeeded predictions with their files are here; left out: {left}.")
    else:
        lines.append("Every prediction in scope succeeded and is here.")
    lines += [
        "",
        'Load one job with `datasets.load_dataset("PATH", "JOB")`, or a folder directly with',
        '`load_dataset("imagefolder", data_dir="PATH/JOB")` (`"json"` for a text job).',
        "",
    ]
    return "\n".join(lines)
