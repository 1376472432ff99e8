"""`plan` against the manifest, as a reviewer reads it on a pull request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import run_spec, write_spec

from batchrun.cli import main
from batchrun.manifest.compare import compare
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

BEFORE = """
batchrun: 1
name: review
output: run
jobs:
  - id: sweep
    model: acme/painter
    input: {prompt: "${subject}", seed: "${seed}"}
    matrix:
      subject: [a fox, a lighthouse]
      seed: [1, 2, 3]
  - id: fixed
    model: acme/painter
    input: {prompt: "${p}", steps: 4}
    matrix: {p: [one, two]}
"""

# The pull request: a new subject, seed 3 dropped, and a fixed input changed in the other job.
AFTER = (
    BEFORE.replace("[a fox, a lighthouse]", "[a fox, a lighthouse, a boat]")
    .replace("seed: [1, 2, 3]", "seed: [1, 2]")
    .replace("steps: 4", "steps: 8")
)


def counts(spec_path: Path) -> dict[str, dict[str, int]]:
    plan = compare(load_spec(spec_path))
    found = {job.id: dict(job.counts) for job in plan.jobs}
    for job, gone in plan.not_in_spec.items():
        found.setdefault(job, {})["not_in_spec"] = gone
    return found


def test_a_pull_request_shows_exactly_what_merging_will_run(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, BEFORE)
    assert counts(spec) == {"sweep": {"new": 6}, "fixed": {"new": 2}}
    assert run_spec(spec, sandbox).ok
    assert counts(spec) == {"sweep": {"done": 6}, "fixed": {"done": 2}}

    write_spec(tmp_path, AFTER)
    assert counts(spec) == {
        "sweep": {"new": 2, "done": 4, "not_in_spec": 2},
        "fixed": {"new": 2, "not_in_spec": 2},
    }
    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "job sweep: acme/painter, 6 predictions\n  2 new, 4 done, 0 in flight" in out
    assert '  new: {"prompt": "a boat", "seed": 1}\n' in out
    assert "  2 recorded predictions no longer in the spec (kept)\n" in out
    assert (
        "total: 8 predictions: 4 new, 4 done, 0 in flight, 0 failed, 0 to download\n"
        "run would: create 4\ntime: about "
    ) in out

    summary = run_spec(spec, sandbox)
    assert summary.ok
    assert summary.tally.finished == {"succeeded": 4}
    assert counts(spec) == {
        "sweep": {"done": 6, "not_in_spec": 2},
        "fixed": {"done": 2, "not_in_spec": 2},
    }


def test_plan_json_gives_each_prediction_its_state(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        output: run
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}", sandbox_status: "${end}"}
            matrix: {i: [0, 1], end: [succeeded, failed]}
        """,
    )
    run_spec(spec, sandbox, limit=3)
    assert main(["plan", str(spec), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["vars"], line["state"]) for line in lines] == [
        ({"i": 0, "end": "succeeded"}, "done"),
        ({"i": 0, "end": "failed"}, "failed"),
        ({"i": 1, "end": "succeeded"}, "done"),
        ({"i": 1, "end": "failed"}, "new"),
    ]
    assert set(lines[0]) == {"key", "job", "target", "vars", "input", "repeat", "state"}


def test_a_deleted_file_shows_as_to_download(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        output: run
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}"}
            matrix: {i: [0, 1]}
        """,
    )
    run_spec(spec, sandbox)
    next((tmp_path / "run").rglob("*.png")).unlink()
    assert counts(spec) == {"painter": {"done": 1, "download": 1}}
