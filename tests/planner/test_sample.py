"""--sample N: every matrix value once N allows it, the rest spread evenly, nested, the same
everywhere; and `plan` selects with --shard, --sample and --limit exactly as `run` does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runs import TOKEN, records, run_spec, write_spec

from batchrun.cli import main
from batchrun.planner.expand import iter_plan
from batchrun.planner.sample import ranked_keys, sample_keys
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

# The sweep: 5 prompts by 4 seeds. The old sample (the middle of each tenth) took only
# odd places of the plan, so `--sample 10` never met the first seed.
SWEEP = """
batchrun: 1
jobs:
  - model: acme/painter
    input: {prompt: "${prompt}", seed: "${seed}", width: 64, height: 64}
    matrix:
      prompt: [a red fox, a boat, a tree, a lighthouse, a kite]
      seed: {range: [1, 5]}
"""


def _vars(spec_path: Path, keys: frozenset[str]) -> list[dict[str, Any]]:
    return [p.vars for p in iter_plan(load_spec(spec_path)) if p.key in keys]


def test_a_sample_as_long_as_the_longest_axis_meets_every_value(tmp_path: Path) -> None:
    path = write_spec(tmp_path, SWEEP)
    for count in (5, 10):
        chosen = _vars(path, sample_keys(load_spec(path), count))
        assert len(chosen) == count
        assert {row["seed"] for row in chosen} == {1, 2, 3, 4}
        assert {row["prompt"] for row in chosen} == {
            "a red fox",
            "a boat",
            "a tree",
            "a lighthouse",
            "a kite",
        }


def test_the_rest_of_a_sample_is_spread_over_the_plan_not_its_head(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, SPEC))
    plan = [p.key for p in iter_plan(spec)]
    assert len(plan) == 18
    # 6 cover the 6 styles (and the 3 subjects); the next 3 are spread over the plan.
    places = sorted(plan.index(key) for key in ranked_keys(spec, 9)[6:])
    assert places == [4, 9, 13]
    assert sample_keys(spec, 9) == sample_keys(spec, 9)  # the same every time
    assert sample_keys(spec, 18) == sample_keys(spec, 100) == set(plan)


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


# --- properties ---------------------------------------------------------------------------

_values = st.lists(
    st.one_of(st.integers(-5, 50), st.sampled_from(["a", "b", "fox", "boat", "x y"])),
    min_size=1,
    max_size=7,
    unique_by=lambda value: (type(value), value),
)
_job = st.tuples(st.lists(_values, min_size=1, max_size=3), st.integers(1, 2))


def _sweep_spec(jobs: list[tuple[list[list[Any]], int]]) -> str:
    lines = ["batchrun: 1", "jobs:"]
    for number, (axes, repeat) in enumerate(jobs):
        names = [f"v{axis}" for axis in range(len(axes))]
        prompt = " ".join([f"job {number}:", *(f"${{{name}}}" for name in names)])
        lines += [
            f"  - id: job{number}",
            "    model: acme/painter",
            f"    repeat: {repeat}",
            f"    input: {{prompt: {json.dumps(prompt)}, width: 8, height: 8}}",
            "    matrix:",
            *(f"      {name}: {json.dumps(axis)}" for name, axis in zip(names, axes, strict=True)),
        ]
    return "\n".join(lines) + "\n"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_job, min_size=1, max_size=2), st.integers(1, 40), st.integers(1, 40))
def test_samples_cover_every_value_and_nest(
    jobs: list[tuple[list[list[Any]], int]], smaller: int, larger: int
) -> None:
    smaller, larger = min(smaller, larger), max(smaller, larger)
    with tempfile.TemporaryDirectory() as folder:
        spec = load_spec(write_spec(Path(folder), _sweep_spec(jobs)))
        plan = list(iter_plan(spec))
        small, large = sample_keys(spec, smaller), sample_keys(spec, larger)
        assert len(small) == min(smaller, len(plan))
        assert small <= large  # nested
        assert ranked_keys(spec, larger)[:smaller] == ranked_keys(spec, smaller)
        # Enough for the longest axis of each job: every value of every axis is met.
        enough = sum(max(len(axis) for axis in axes) for axes, _ in jobs)
        covering = sample_keys(spec, enough)
        assert len(covering) == min(enough, len(plan))
        for number, (axes, _) in enumerate(jobs):
            met = [p.vars for p in plan if p.key in covering and p.job == f"job{number}"]
            for axis, values in enumerate(axes):
                shown = {json.dumps(row[f"v{axis}"]) for row in met}
                assert shown == {json.dumps(value) for value in values}


def test_a_single_job_needs_no_more_than_its_longest_axis() -> None:
    # Three axes of 2, 7 and 3 values, the longest in the middle: 7 predictions meet all 12.
    body = _sweep_spec([([[1, 2], list("abcdefg"), [True, False, None]], 1)])
    with tempfile.TemporaryDirectory() as folder:
        spec = load_spec(write_spec(Path(folder), body))
        met = [p.vars for p in iter_plan(spec) if p.key in sample_keys(spec, 7)]
    assert [len({json.dumps(row[f"v{axis}"]) for row in met}) for axis in range(3)] == [2, 7, 3]


def test_excluded_combinations_still_leave_every_value_met(tmp_path: Path) -> None:
    path = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "${a} ${b}"}
            matrix:
              a: [1, 2, 3]
              b: [x, y, z]
            exclude: [{a: 2, b: y}, {a: 3, b: z}, {a: 3, b: y}]
            include: [{a: 9, b: w}]
        """,
    )
    spec = load_spec(path)
    assert len(list(iter_plan(spec))) == 7
    chosen = _vars(path, sample_keys(spec, 5))
    assert {row["a"] for row in chosen} == {1, 2, 3, 9}
    assert {row["b"] for row in chosen} == {"x", "y", "z", "w"}


# --- the same sample on every machine -----------------------------------------------------


def test_the_sample_does_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    path = write_spec(tmp_path, SWEEP)
    outputs = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        command = [sys.executable, "-m", "batchrun", "plan", str(path), "--json", "--sample", "7"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert len(outputs.pop().splitlines()) == 7


# --- plan selects what run runs -----------------------------------------------------------


def _plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["plan", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_plan_shows_the_sample_run_runs_and_a_larger_sample_adds_to_it(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = write_spec(tmp_path, SWEEP)
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    out = tmp_path / "cli"
    shown = _plan_json(capsys, str(path), "--sample", "4", "--out", str(out))
    assert len(shown) == 4
    argv = ["run", str(path), "--base-url", sandbox.base_url, "--out", str(out)]
    assert main([*argv, "--sample", "4"]) == 0
    assert "  predictions: succeeded 4\n" in capsys.readouterr().err
    assert set(records(out)) == {line["key"] for line in shown}

    # Nested: --sample 8 plans the 4 as done and 4 new, and running it creates only those.
    eight = _plan_json(capsys, str(path), "--sample", "8", "--out", str(out))
    assert sorted(line["state"] for line in eight) == ["done"] * 4 + ["new"] * 4
    assert main([*argv, "--sample", "8"]) == 0
    assert sandbox.state.snapshot()["creates"] == 8
    assert set(records(out)) == {line["key"] for line in eight}


def test_plan_selects_with_shard_sample_and_limit_as_run_does(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(tmp_path, SWEEP)
    whole = [line["key"] for line in _plan_json(capsys, str(path))]
    assert [line["key"] for line in _plan_json(capsys, str(path), "--limit", "3")] == whole[:3]
    mine = [p.key for p in iter_plan(load_spec(path), shard=(2, 3))]
    picked = _plan_json(capsys, str(path), "--shard", "2/3", "--sample", "4", "--limit", "3")
    sampled = sample_keys(load_spec(path), 4, shard=(2, 3))
    assert [line["key"] for line in picked] == [key for key in mine if key in sampled][:3]

    summary = run_spec(path, sandbox, shard=(2, 3), sample=4, limit=3)
    assert set(records(tmp_path / "run")) == {line["key"] for line in picked}
    assert summary.tally.finished == {"succeeded": 3}


def test_plan_text_counts_and_shows_only_the_selection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_spec(tmp_path, SWEEP)
    assert main(["plan", str(path), "--sample", "5"]) == 0
    out = capsys.readouterr().out
    assert "--sample 5: only what `run --sample 5` would act on is counted\n" in out
    assert "job painter: acme/painter, 5 predictions\n" in out
    shown = [line for line in out.splitlines() if line.startswith('  {"prompt"')]
    assert len(shown) == 5
    assert {json.loads(line)["seed"] for line in shown} == {1, 2, 3, 4}
    assert "total: 5 predictions in 1 job" in out


def test_a_diff_takes_no_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, SPEC)
    assert main(["plan", str(path), "--diff", "HEAD", "--sample", "2"]) == 2
    assert capsys.readouterr().err == (
        "batchrun: --diff compares whole plans; it takes no --shard, --sample or --limit\n"
    )


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


def test_the_python_api_plans_the_same_selection(tmp_path: Path) -> None:
    import batchrun

    path = write_spec(tmp_path, SWEEP)
    assert {line["key"] for line in batchrun.plan(path, sample=6)} == sample_keys(
        load_spec(path), 6
    )
    assert len(batchrun.plan(path, sample=6, limit=2)) == 2
