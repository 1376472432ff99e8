"""Which specs read a file: `validate VALUE_FILE` checks them (the pre-commit hook on a value file).

A spec reads only inside its own folder (docs/SECURITY.md), so the specs that may read a file
are the batchrun specs (YAML files whose first key is `batchrun:`) in the file's folder and in
each folder above it, up to the top of its git repository. Of those, a spec reads the file when
one of its matrix axes reads it (`{csv: ...}`, `{lines: ...}`, a `{glob: ...}` that matches it),
when a job sends local files (`{file: ...}`) from its folder, or, for a spec that does not load,
when one of its errors is placed in that file (`prompts.csv:54:1: ...`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from batchrun.errors import SpecError
from batchrun.safefs import is_inside
from batchrun.spec.load import Spec, load_spec
from batchrun.spec.sources import FileSource, GlobSource

# The extensions of spec files: anything else given to `validate` is a value file.
SPEC_SUFFIXES = (".yaml", ".yml")
# A spec's first mapping key; YAML files without it (a CI config beside the specs) are skipped.
_SPEC_START = re.compile(r"^batchrun\s*:", re.MULTILINE)
# How far up a value file's folders to look when no .git marks the repository's top: specs sit
# at most a few folders above their value files.
MAX_LEVELS = 8
# A YAML file bigger than this is not read to see whether it is a spec (a spec is a page).
_SNIFF_BYTES = 1 << 20


def is_spec_path(path: str | os.PathLike[str]) -> bool:
    """Whether `validate` takes this argument as a spec (else as a value file)."""
    return os.fspath(path).lower().endswith(SPEC_SUFFIXES)


def specs_reading(path: str | os.PathLike[str]) -> list[Path]:
    """The spec files that read `path` (see the module's doc), nearest folder first."""
    target = Path(os.path.abspath(path))
    found = []
    for spec_path in _candidates(target):
        try:
            spec = load_spec(spec_path)
        except SpecError as error:
            if any(_names(issue.file, spec_path, target) for issue in error.issues):
                found.append(spec_path)
            continue
        if _reads(spec, target):
            found.append(spec_path)
    return found


def _candidates(target: Path) -> Iterator[Path]:
    folder = target.parent
    for _ in range(MAX_LEVELS):
        for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
            if entry != target and is_spec_path(entry) and _looks_like_spec(entry):
                yield entry
        if (folder / ".git").exists() or folder.parent == folder:
            return
        folder = folder.parent


def _looks_like_spec(path: Path) -> bool:
    try:
        if not path.is_file() or path.stat().st_size > _SNIFF_BYTES:
            return False
        return _SPEC_START.search(path.read_text(encoding="utf-8", errors="replace")) is not None
    except OSError:
        return False


def _names(shown: str, spec_path: Path, target: Path) -> bool:
    """Whether an issue's file (as messages show it, relative to here) is the target."""
    for base in (Path.cwd(), spec_path.parent):
        if Path(os.path.abspath(base / shown)) == target:
            return True
    return False


def _reads(spec: Spec, target: Path) -> bool:
    real = target.resolve()
    for job in spec.jobs:
        for _, source in job.matrix.axes:
            if isinstance(source, FileSource) and source.path.resolve() == real:
                return True
            if isinstance(source, GlobSource) and is_inside(real, source.base.resolve()):
                inside = real.relative_to(source.base.resolve()).as_posix()
                if inside in source.materialize():
                    return True
        if sends_files(job.input) and is_inside(real, spec.folder.resolve()):
            return True
    return False


def sends_files(value: Any) -> bool:
    """Whether a job's input (or a part of it) names a local file to send: a mapping with a
    `file` key anywhere in it (more than the `{file: ...}` a job compiles: never fewer)."""
    if isinstance(value, Mapping):
        return "file" in value or any(sends_files(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(sends_files(item) for item in value)
    return False
