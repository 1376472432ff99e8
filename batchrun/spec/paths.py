"""Where a path written in a spec points: one rule for what `load` checks and the plan reads."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_path(folder: Path, written: str) -> Path:
    """A path a spec wrote (`~` allowed), relative to the spec's folder: what load checks and
    the plan hashes must be one file."""
    return Path(os.path.normpath(folder / os.path.expanduser(written)))
