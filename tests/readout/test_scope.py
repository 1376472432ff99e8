"""status, report and export count the predictions of the current spec; `--all` adds the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import RunCli, run_spec, write_spec

from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

SPEC = """
    batchrun: 1
    name: scoped
    jobs:
      - id: pics
        model: acme/painter
        input: {prompt: "${subject}", seed: 1}
        matrix:
          subject: [a fox, a boat, a kite]
    """


@pytest.fixture
def edited(tmp_path: Path, sandbox: Sandbox) -> Path:
    """A spec run once with three subjects, then edited to two (one new): 2 current, 2 gone."""
    spec = write_spec(tmp_path, SPEC)
    run_spec(spec, sandbox, out=load_spec(spec).output)
    spec.write_text(spec.read_text().replace("[a fox, a boat, a kite]", "[a fox, a crane]"))
    run_spec(spec, sandbox, out=load_spec(spec).output)
    spec.write_text(spec.read_text().replace("[a fox, a crane]", "[a fox, a boat, a bell]"))
    return spec


def test_status_counts_the_current_spec(edited: Path, run_cli: RunCli) -> None:
    run_dir = load_spec(edited).output
    # Planned now: fox and boat recorded, bell never run: the plan is not done (exit 1).
    code, out, err = run_cli("status", str(edited), "--json")
    assert (code, err) == (1, "")
    data = json.loads(out)
    assert (data["total"], data["not_in_spec"], data["not_in_spec_counted"]) == (2, 2, False)
    assert (data["planned"], data["done"], data["not_started"]) == (3, 2, 1)
    code, out, err = run_cli("status", str(run_dir))
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == f"{run_dir}: 2 predictions in 1 manifest"
    assert "2 of 3 done, 1 not started" in out.splitlines()
    assert out.splitlines()[-1] == (
        "2 recorded predictions the spec no longer plans are not counted (--all counts them)"
    )
    code, out, err = run_cli("status", str(edited), "--all", "--json")
    assert (code, err) == (1, "")
    data = json.loads(out)
    assert (data["total"], data["not_in_spec"], data["not_in_spec_counted"]) == (4, 2, True)
    assert data["states"]["done"] == 4  # the two the spec no longer plans count, with --all


def test_export_and_report_follow_the_same_scope(edited: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("export", str(edited), "--format", "jsonl", "--to", "-")
    assert sorted(json.loads(line)["subject"] for line in out.splitlines()) == ["a boat", "a fox"]
    assert err == (
        "batchrun: wrote 2 rows to stdout\n"
        "batchrun: 1 planned prediction not started, so not in it\n"
        "batchrun: 2 recorded predictions the spec no longer plans are not counted "
        "(--all counts them)\n"
    )
    code, out, err = run_cli("export", str(edited), "--format", "jsonl", "--to", "-", "--all")
    subjects = sorted(json.loads(line)["subject"] for line in out.splitlines())
    assert subjects == ["a boat", "a crane", "a fox", "a kite"]

    code, out, err = run_cli("report", str(edited))
    page = Path(out.strip()).read_text()
    assert "a kite" not in page
    assert "2 recorded predictions the spec no longer plans are not counted" in page
    code, out, err = run_cli("report", str(edited), "--all")
    assert (code, err) == (0, "")
    page = Path(out.strip()).read_text()
    assert "a kite" in page
    assert "a crane" in page


def test_an_hf_export_with_all_counts_the_plan_and_the_rest_apart(
    edited: Path, run_cli: RunCli
) -> None:
    dest = edited.parent / "dataset"
    code, _, _ = run_cli("export", str(edited), "--format", "hf", "--to", str(dest), "--all")
    assert code == 0
    card = (dest / "README.md").read_text()
    assert "2 of the 3 planned predictions are here; missing: 1 not started." in card
    assert "Also here: 2 predictions the spec no longer plans (`--all`)." in card


def test_without_its_spec_every_record_counts(edited: Path, run_cli: RunCli) -> None:
    run_dir = load_spec(edited).output
    edited.unlink()
    code, out, err = run_cli("status", str(run_dir))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{run_dir}: 4 predictions in 1 manifest"
    assert (
        out.splitlines()[-1]
        == f"every recorded prediction is counted: its spec {edited} does not load"
    )
