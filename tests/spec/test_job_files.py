"""A job's own `files` template: it names that job's files, and its variables are that job's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import TOKEN, records, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox

# A text job beside an image job: the image job names its files by its own variable.
SPEC = """
batchrun: 1
files: "${job}/${key}-${index}${ext}"
jobs:
  - id: pictures
    model: acme/painter
    input: {prompt: "${subject}", width: 64, height: 64}
    matrix:
      subject: [a fox, a boat]
    files: "pictures/${subject}-${index}${ext}"
  - id: words
    model: acme/writer
    input: {prompt: "${question}"}
    matrix:
      question: [why?, how?]
"""


def _validate(capsys: pytest.CaptureFixture[str], spec: Path) -> tuple[int, str]:
    code = main(["validate", str(spec)])
    out, err = capsys.readouterr()
    return code, out + err


def test_a_job_names_its_files_by_its_own_variables(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_spec(tmp_path, SPEC)
    code, said = _validate(capsys, spec)
    assert code == 0, said

    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    out = tmp_path / "run"
    assert main(["run", str(spec), "--base-url", sandbox.base_url, "--out", str(out)]) == 0
    paths = sorted(file.path for record in records(out).values() for file in record.files)
    pictures = [path for path in paths if path.startswith("pictures/")]
    assert pictures == ["pictures/a_boat-0.png", "pictures/a_fox-0.png"]
    words = [path for path in paths if path.startswith("words/")]
    assert len(words) == 2  # the top-level template: words/KEY.txt
    assert all((out / path).is_file() for path in paths)
    templates = {record.job: record.files_template for record in records(out).values()}
    assert templates == {
        "pictures": "pictures/${subject}-${index}${ext}",
        "words": "${job}/${key}-${index}${ext}",
    }

    # Plan agrees with the run: every file is where the job's template says, nothing moves.
    capsys.readouterr()
    assert main(["plan", str(spec), "--out", str(out), "--json"]) == 0
    states = {json.loads(line)["state"] for line in capsys.readouterr().out.splitlines()}
    assert states == {"done"}


def test_the_top_level_template_is_checked_only_against_the_jobs_it_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: one template served every job, so ${subject} had to be a variable of `words` too.
    spec = write_spec(
        tmp_path, SPEC.replace('files: "${job}/${key}-${index}${ext}"', 'files: "${subject}"')
    )
    code, said = _validate(capsys, spec)
    assert code == 2
    # Only `words` uses it: ${subject} is unknown there, whatever `pictures` has.
    assert (
        "spec.yaml:2:9: files: unknown variable ${subject}; the variables are ext, index, job,"
        " key, output, question, repeat\n"
    ) in said
    assert "jobs[0]" not in said


def test_a_jobs_template_is_checked_against_that_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        SPEC.replace('files: "pictures/${subject}-${index}${ext}"', 'files: "${question}${ext}"'),
    )
    code, said = _validate(capsys, spec)
    assert code == 2
    assert (
        "spec.yaml:9:13: jobs[0].files: unknown variable ${question}; the variables are ext,"
        " index, job, key, output, repeat, subject\n"
    ) in said


def test_a_jobs_template_that_names_two_rows_alike_is_placed_at_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        SPEC.replace('files: "pictures/${subject}-${index}${ext}"', 'files: "pictures${ext}"'),
    )
    code, said = _validate(capsys, spec)
    assert code == 2
    assert "spec.yaml:9:12: jobs[0].files: this template names the files of the row" in said
