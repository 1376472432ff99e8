from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from runs import records, run_spec, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox


@pytest.fixture
def run_dir(tmp_path: Path, sandbox: Sandbox) -> Path:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - id: img
            model: acme/painter
            input: {prompt: "p${i}", sandbox_status: "${outcome}", sandbox_error: "out of memory"}
            matrix: {i: [0, 1], outcome: [succeeded, failed]}
          - id: chat
            model: meta/llama-chat
            input: {prompt: "hello"}
        """,
    )
    run_spec(spec, sandbox)
    return tmp_path / "run"


def test_status_json_counts_by_status_and_job(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(run_dir), "--json"]) == 1  # not everything succeeded
    status = json.loads(capsys.readouterr().out)
    assert status["total"] == 5
    assert status["counts"]["succeeded"] == 3
    assert status["counts"]["failed"] == 2
    assert status["jobs"]["img"]["failed"] == 2
    assert status["jobs"]["chat"]["succeeded"] == 1
    assert status["files"] == 2
    assert [f["error"] for f in status["failures"]] == ["out of memory", "out of memory"]
    assert status["manifests"] == [str(run_dir / "manifest.jsonl")]


def test_status_text_names_failures(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["status", str(run_dir)])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith(": 5 predictions in 1 manifest")
    assert lines[1].split() == ["job", "succeeded", "failed", "total"]
    assert lines[2].split() == ["img", "2", "2", "4"]
    assert lines[3].split() == ["chat", "1", "0", "1"]
    assert lines[4].split() == ["total", "3", "2", "5"]
    assert lines[5] == "3 of 5 done, 2 failed"
    assert lines[6].startswith("api: http://127.0.0.1:")
    assert lines[6].endswith(" (sandbox): 5 predictions")
    assert lines[7] == "these are the sandbox's made-up results, not a real model's output"
    assert lines[8].startswith("files: 2 (")
    failures = [line for line in lines if "failed: out of memory" in line]
    assert len(failures) == 2


def test_csv_export_has_one_row_per_key(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export.csv"
    main(["status", str(run_dir), "--csv", str(out)])
    assert capsys.readouterr().err == f"batchrun: wrote 5 rows to {out}\n"
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 5
    by_key = {row["key"]: row for row in rows}
    for key, record in records(run_dir).items():
        row = by_key[key]
        assert row["status"] == record.status
        assert json.loads(row["vars"]) == record.vars
        assert row["files"] == " ".join(f.path for f in record.files)
    chat = next(row for row in rows if row["job"] == "chat")
    assert chat["target"] == "meta/llama-chat"
    assert chat["output"] != ""


def test_status_of_a_spec_that_never_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "x${i}"}
            matrix: {i: [1, 2, 3]}
        """,
    )
    run_dir = tmp_path / "runs" / "spec"
    assert main(["status", str(spec)]) == 1  # the plan is not done: as for any incomplete plan
    said = capsys.readouterr().out.splitlines()
    assert said == [
        f"{run_dir}: no manifest yet; nothing has run here",
        "0 of 3 planned predictions done, 3 not started",
    ]
    assert main(["status", str(spec), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert (data["planned"], data["done"], data["not_started"]) == (3, 0, 3)
    assert data["complete"] is False
    assert data["manifests"] == []
    assert not run_dir.exists()  # a status writes nothing
    # Where `run --sandbox` left its runs of the spec, it says so.
    (tmp_path / "runs" / "spec-sandbox").mkdir(parents=True)
    (tmp_path / "runs" / "spec-sandbox" / "manifest.jsonl").write_text("")
    assert main(["status", str(spec)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        f"{run_dir}: no manifest yet; nothing has run here"
        f" (the sandbox's runs are in {tmp_path / 'runs' / 'spec-sandbox'})"
    )
    # A run folder named as such still needs a manifest: without a spec there is no plan.
    run_dir.mkdir(parents=True)
    assert main(["status", str(run_dir)]) == 2
    assert "no manifest here; nothing has run yet" in capsys.readouterr().err
