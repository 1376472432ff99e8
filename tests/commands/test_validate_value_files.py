"""`batchrun validate VALUE_FILE`: a value file given checks the specs that read it."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import write_spec

from batchrun.cli import main

SWEEP = """
batchrun: 1
jobs:
  - model: acme/writer
    input: {prompt: "${row.prompt}"}
    matrix:
      row: {csv: data/prompts.csv}
"""
OTHER = """
batchrun: 1
jobs:
  - model: acme/writer
    input: {prompt: "${line}"}
    matrix:
      line: {lines: styles.txt}
"""


@pytest.fixture
def specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository: specs/sweep.yaml reads specs/data/prompts.csv; specs/other.yaml does not."""
    (tmp_path / ".git").mkdir()  # the top of the repository, as git marks it
    folder = tmp_path / "specs"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "prompts.csv").write_text("prompt\na fox\na boat\n")
    (folder / "styles.txt").write_text("ink\n")
    write_spec(folder, SWEEP, "sweep.yaml")
    write_spec(folder, OTHER, "other.yaml")
    (folder / "ci.yaml").write_text("on: push\n")  # YAML, but no spec
    monkeypatch.chdir(tmp_path)
    return folder


def test_a_value_file_checks_the_specs_that_read_it(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", "specs/data/prompts.csv"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("specs/data/prompts.csv: a value file, read by specs/sweep.yaml\n")
    assert "specs/sweep.yaml: ok (2 predictions in 1 job)" in out
    assert "other.yaml" not in out


def test_a_broken_value_file_fails_the_specs_that_read_it_at_its_line(
    specs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (specs / "data" / "prompts.csv").write_text('prompt\na fox\n"a boat\n')

    assert main(["validate", "specs/data/prompts.csv"]) == 2
    captured = capsys.readouterr()
    assert "specs/data/prompts.csv: a value file, read by specs/sweep.yaml\n" in captured.out
    assert captured.err.startswith("specs/data/prompts.csv:3:1: jobs[0].matrix.row: ")
    assert "other.yaml" not in captured.out + captured.err


def test_a_value_file_no_spec_reads_passes(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (specs / "data" / "notes.txt").write_text("hello\n")
    assert main(["validate", "specs/data/notes.txt"]) == 0
    assert capsys.readouterr().out == "specs/data/notes.txt: a value file, no spec reads it\n"


def test_each_spec_is_checked_once(specs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "specs/sweep.yaml", "specs/data/prompts.csv", "specs/styles.txt"]) == 0
    out = capsys.readouterr().out
    assert out.count("specs/sweep.yaml: ok") == 1
    assert out.count("specs/other.yaml: ok") == 1
