"""Finding a run folder from what a person typed: the folder itself, or the spec that names it."""

from __future__ import annotations

from pathlib import Path

from batchrun.errors import UsageError
from batchrun.manifest import manifest_paths
from batchrun.spec import load_spec


def run_dir_of(text: str) -> Path:
    """The run folder `text` names: a folder with manifests, or a spec file (its output)."""
    path = Path(text)
    if path.is_dir():
        folder = path
    elif path.is_file():
        folder = load_spec(path).output
    else:
        raise UsageError(f"{text}: no such run folder or spec file")
    if not manifest_paths(folder):
        raise UsageError(f"{folder}: no manifest here; nothing has run yet")
    return folder
