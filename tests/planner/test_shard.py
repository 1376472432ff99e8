"""--shard I/N: machines (or CI jobs) share a plan by key, each with its own manifest file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import assert_files_intact, records, run_spec, write_spec

from batchrun.cli import main
from batchrun.manifest.reader import manifest_paths
from batchrun.sandbox import Sandbox

SPEC = """
batchrun: 1
output: run
jobs:
  - model: acme/painter
    input: {prompt: "${subject} ${seed}", seed: "${seed}"}
    matrix:
      subject: [fox, boat, tree]
      seed: {range: [0, 7]}
"""


@pytest.mark.slow
def test_two_shards_one_after_the_other_equal_one_unsharded_run(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    (tmp_path / "whole").mkdir()
    (tmp_path / "split").mkdir()
    whole, split = write_spec(tmp_path / "whole", SPEC), write_spec(tmp_path / "split", SPEC)

    assert run_spec(whole, sandbox).ok
    creates = sandbox.state.snapshot()["creates"]
    assert creates == 21

    first = run_spec(split, sandbox, shard=(1, 2))
    second = run_spec(split, sandbox, shard=(2, 2))
    assert first.ok
    assert second.ok
    assert first.survey.planned + second.survey.planned == 21
    assert first.survey.planned > 0
    assert second.survey.planned > 0
    assert sandbox.state.snapshot()["creates"] == 2 * creates  # no key ran twice

    run_dir = tmp_path / "split" / "run"
    assert [p.name for p in manifest_paths(run_dir)] == [
        "manifest.shard-1-of-2.jsonl",
        "manifest.shard-2-of-2.jsonl",
    ]
    sharded = records(run_dir)
    assert set(sharded) == set(records(tmp_path / "whole" / "run"))
    assert {r.status for r in sharded.values()} == {"succeeded"}
    assert assert_files_intact(run_dir) == 21

    # Running a shard again does nothing; so does an unsharded run over both shards' work.
    assert run_spec(split, sandbox, shard=(1, 2)).tally.finished == {}
    again = run_spec(split, sandbox)
    assert again.survey.done == 21
    assert sandbox.state.snapshot()["creates"] == 2 * creates


def test_status_and_plan_read_every_shard(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, SPEC)
    run_spec(spec, sandbox, shard=(1, 3))
    run_spec(spec, sandbox, shard=(3, 3))
    main(["status", str(tmp_path / "run"), "--json"])
    status = json.loads(capsys.readouterr().out)
    assert len(status["manifests"]) == 2
    done = status["counts"]["succeeded"]
    assert 0 < done < 21

    main(["plan", str(spec), "--shard", "2/3"])
    out = capsys.readouterr().out
    assert "shard 2/3: only the keys of this shard are counted" in out
    assert f"total: {21 - done} predictions: {21 - done} new, 0 done" in out


def test_a_shard_must_be_i_of_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path, SPEC)
    assert main(["plan", str(spec), "--shard", "3/2"]) == 2
    assert "shard" in capsys.readouterr().err
