"""Helpers for end-to-end tests: write specs, run them against a sandbox, read what they left."""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path
from typing import Any

from batchrun.manifest import Record, load_records
from batchrun.runner import RunOptions, RunSummary, run
from batchrun.sandbox import Sandbox
from batchrun.spec import load_spec

TOKEN = "r8_e2e_test_token_0123456789abcdef"


def write_spec(folder: Path, body: str, name: str = "spec.yaml") -> Path:
    """Write a spec file (dedented) and return its path."""
    path = folder / name
    path.write_text(textwrap.dedent(body).lstrip())
    return path


def run_spec(spec_path: Path, sandbox: Sandbox, **options: Any) -> RunSummary:
    """Run a spec against `sandbox` through the library, into `<spec folder>/run`."""
    spec = load_spec(spec_path)
    options.setdefault("out", spec_path.parent / "run")
    return run(spec, RunOptions(base_url=sandbox.base_url, token=TOKEN, **options))


def records(run_dir: Path) -> dict[str, Record]:
    """The last record of every key in a run folder."""
    return load_records(run_dir)[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_files_intact(run_dir: Path) -> int:
    """Every recorded file is in place with its sha256, and no .part file is left; the count."""
    count = 0
    for record in records(run_dir).values():
        for file in record.files:
            path = run_dir / file.path
            assert path.exists(), f"{file.path} of {record.key} is missing"
            assert sha256(path) == file.sha256, f"{file.path} is torn or changed"
            assert path.stat().st_size == file.bytes
            count += 1
    leftovers = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.part"))
    assert leftovers == []
    return count
