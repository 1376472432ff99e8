"""--sample N: N predictions spread evenly over the plan, the same N every time."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import TOKEN, records, run_spec, write_spec

from batchrun.cli import main
from batchrun.planner.expand import iter_plan
from batchrun.planner.sample import sample_keys
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

SPEC = """
batchrun: 1
jobs:
  - model: acme/painter
    input: {prompt: "${subject}, ${style}", width: 64, height: 64}
    matrix:
      subject: [a red fox, a boat, a tree]
      style: [oil, ink, pastel, charcoal, watercolor, pixel]
"""


def test_the_sample_is_spread_over_the_plan_not_its_head(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC))
    plan = list(iter_plan(spec))
    assert len(plan) == 18
    chosen = sample_keys(spec, 3)
    # 3 of 18: the middle of each third, places 3, 9 and 15; one of each subject.
    assert chosen == {plan[3].key, plan[9].key, plan[15].key}
    assert sorted(p.vars["subject"] for p in plan if p.key in chosen) == [
        "a boat",
        "a red fox",
        "a tree",
    ]
    assert sample_keys(spec, 3) == chosen  # the same every time
    assert sample_keys(spec, 18) == sample_keys(spec, 100) == {p.key for p in plan}


def test_a_shard_samples_its_own_part_of_the_plan(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC))
    mine = [p.key for p in iter_plan(spec, shard=(2, 3))]
    chosen = sample_keys(spec, 2, shard=(2, 3))
    assert len(chosen) == 2
    assert chosen <= set(mine)


def test_a_sample_must_have_one(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC))
    with pytest.raises(ValueError, match=r"^a sample must have at least 1 prediction, got 0$"):
        sample_keys(spec, 0)


def test_a_sampled_run_runs_the_sample_and_the_next_run_the_rest(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    path = write_spec(tmp_path, SPEC)
    first = run_spec(path, sandbox, sample=4)
    assert first.ok
    assert first.tally.finished == {"succeeded": 4}
    assert set(records(tmp_path / "run")) == sample_keys(load_spec(path), 4)
    assert sandbox.state.snapshot()["creates"] == 4

    again = run_spec(path, sandbox, sample=4)
    assert (again.tally.finished, again.survey.done) == ({}, 4)

    rest = run_spec(path, sandbox)
    assert rest.tally.finished == {"succeeded": 14}
    assert sandbox.state.snapshot()["creates"] == 18


def test_run_sample_on_the_command_line(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_spec(tmp_path, SPEC)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    out = tmp_path / "cli"
    argv = ["run", str(path), "--base-url", sandbox.base_url, "--out", str(out)]
    assert main([*argv, "--sample", "2"]) == 0
    assert "  predictions: succeeded 2\n" in capsys.readouterr().err
    assert set(records(out)) == sample_keys(load_spec(path), 2)
