"""A reader that stops early (`batchrun plan SPEC | head -3`) ends the command quietly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runs import run_spec, write_spec

ROOT = Path(__file__).resolve().parents[2]


def run_into_a_closed_pipe(cwd: Path, *argv: str) -> tuple[int, str]:
    """Run `batchrun ARGV` with stdout a pipe whose reader has already gone; (code, stderr)."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write meets EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "batchrun", *argv],
            stdout=write,
            stderr=subprocess.PIPE,
            cwd=cwd,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write)
    return done.returncode, done.stderr


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns("runs"))
    return tmp_path


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "specs/sweep.yaml"],
        ["plan", "specs/sweep.yaml", "--json"],
        ["validate", "specs/sweep.yaml"],
        ["--help"],
        [],
        ["completion", "bash"],
    ],
    ids=["plan", "plan-json", "validate", "help", "bare", "completion"],
)
def test_a_closed_stdout_ends_quietly_with_0(specs: Path, argv: list[str]) -> None:
    code, err = run_into_a_closed_pipe(specs, *argv)
    assert (code, err) == (0, "")


def test_status_into_a_closed_pipe(tmp_path: Path, sandbox: object) -> None:
    from batchrun.sandbox import Sandbox

    assert isinstance(sandbox, Sandbox)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "${p}"}
            matrix: {p: [a, b, c]}
        """,
    )
    run_spec(spec, sandbox)
    code, err = run_into_a_closed_pipe(tmp_path, "status", "run")
    assert (code, err) == (0, "")


def test_head_reads_what_it_wants_and_the_command_ends_without_a_traceback(specs: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "batchrun", "plan", "specs/sweep.yaml", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=specs,
        text=True,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        first = child.stdout.readline()
        child.stdout.close()  # what `head -1` does once it has its line
        err = child.stderr.read()
        code = child.wait(timeout=60)
    assert first.startswith('{"key":')
    assert (code, err) == (0, "")
