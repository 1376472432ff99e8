"""`plan` shows the bill: per job and in total, text and JSON, and says how it estimated it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import TOKEN, Git, count_walks, records, run_spec, write_spec

from batchrun.cli import main
from batchrun.cost import Price, SchemaCount, money
from batchrun.manifest.estimate import JobEstimate, add
from batchrun.planner.expand import PlannedPrediction
from batchrun.sandbox import Sandbox
from batchrun.spec.target import Target

SPEC = """
batchrun: 1
timeout: 5m
jobs:
  - model: acme/painter
    price: {per_image: 0.003}
    input: {prompt: "p${i}", num_outputs: 2}
    matrix: {i: {range: [0, 200]}}
  - model: acme/slow
    price: {per_second: 0.5}
    input: {prompt: "s${i}"}
    matrix: {i: [1, 2, 3, 4]}
  - model: acme/free
    input: {prompt: "free"}
"""


def _plan(spec: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    assert main(["plan", str(spec), "--out", str(spec.parent / "run"), *extra]) == 0
    return capsys.readouterr().out


def test_plan_shows_the_bill_before_anything_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, SPEC)
    lines = _plan(spec, capsys).splitlines()
    start = lines.index("cost of what run would create (estimated from your prices):")
    assert lines[start + 1 : start + 5] == [
        "  painter: $1.20 for 200 predictions: 400 images (num_outputs from the input) × per_image"
        " (price from jobs[0].price)",
        "  slow: unknown until the first predictions finish (4 predictions); at most $600.00:"
        " per_second × its timeout (5m 00s) (price from jobs[1].price)",
        "  no price: free (not counted)",
        "  total: $1.20 known so far; at most $601.20",
    ]
    assert lines[start + 5].startswith("time: at least 20.5s (creates at 10/s, 32 in flight);")

    rows = [json.loads(line) for line in _plan(spec, capsys, "--json").splitlines()]
    assert rows[0]["cost"] == {
        "estimated_usd": 0.006,
        "at_most_usd": 0.006,
        "price": {"per_image": 0.003},
        "estimated_from": "your prices",
        "images": 2,
        "images_from": "input",
    }
    assert rows[200]["cost"]["estimated_usd"] is None
    assert rows[200]["cost"]["at_most_usd"] == 150.0
    assert "cost" not in rows[-1]
    by_job: dict[str, float] = {}
    for row in rows:
        if "cost" in row and row["cost"]["estimated_usd"] is not None:
            by_job[row["job"]] = by_job.get(row["job"], 0) + row["cost"]["estimated_usd"]
    assert by_job == {"painter": pytest.approx(1.2)}


def test_per_second_is_learned_from_this_folders_manifest(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path, SPEC)
    run_spec(spec, sandbox, limit=202)  # the painter's 200 and two of slow's
    slow = [r for r in records(tmp_path / "run").values() if r.job == "slow"]
    mean = sum(r.metrics["predict_time"] for r in slow) / len(slow)

    lines = _plan(spec, capsys).splitlines()
    start = lines.index("cost of what run would create (estimated from your prices):")
    learned = f"{mean:.3g}s predict time learned from 2 in this folder × per_second"
    assert lines[start + 1] == (
        f"  slow: {money(2 * mean * 0.5)} for 2 predictions: {learned} (price from jobs[1].price)"
    )
    assert lines[start + 3] == f"  total: {money(2 * mean * 0.5)}"
    # The free job has not run here yet: how long its predictions take is not known.
    assert lines[-1].startswith("time: at least 0.3s (creates at 10/s, 32 in flight)")


def test_plan_walks_the_plan_once_for_its_counts_and_its_estimate(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The estimate counts what run would create during the walk that counts the plan (the
    summary's, or the comparison's against a manifest), not in a walk of its own."""
    spec = write_spec(tmp_path, SPEC)
    walks = count_walks(monkeypatch)
    fresh = _plan(spec, capsys)
    assert "  painter: $1.20 for 200 predictions:" in fresh
    assert len(walks) == 1
    run_spec(spec, sandbox, limit=150)
    walks.clear()
    compared = _plan(spec, capsys)
    assert "  painter: $0.30 for 50 predictions:" in compared
    assert len(walks) == 1


def test_plan_diff_markdown_shows_the_money_a_change_adds_and_removes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], git: Git
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            price: {per_image: 0.05}
            input: {prompt: "p${i}", num_outputs: 2}
            matrix: {i: [1, 2, 3]}
          - model: acme/other
            price: {per_prediction: 0.03}
            input: {prompt: "o${i}"}
            matrix: {i: [1, 2]}
        """,
    )
    git(tmp_path, "init", "-q", "-b", "main")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "first")
    text = spec.read_text()
    text = text.replace("i: [1, 2, 3]", "i: [1, 2, 3, 4]").replace("i: [1, 2]}", "i: [1]}")
    spec.write_text(text)

    assert main(["plan", str(spec), "--diff", "HEAD", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| predict time to expect | money (estimated from your prices) |" in out
    assert "| `painter` | 1 | 0 | 0 | 3 | no recorded runs | +$0.10 |" in out
    assert "| `other` | 0 | 0 | 1 | 1 | — | -$0.03 |" in out
    assert "| **total** | **1** | **0** | **1** | **4** | | **+$0.10 -$0.03** |" in out


FOUR = """
batchrun: 1
files: "${key}-${index}${ext}"
jobs:
  - id: four
    model: sandbox/flux-schnell-four
    price: {per_image: 0.003}
    input: {prompt: "p${i}"}
    matrix: {i: {range: [0, 6]}}
  - id: two
    model: sandbox/flux-schnell-four
    price: {per_image: 0.003}
    input: {prompt: "q${i}", num_outputs: "${n}"}
    matrix: {i: [1], n: [2]}
"""


def _cost_line(text: str, job: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"  {job}: "))


def test_plan_counts_the_images_a_model_makes_by_its_schemas_default(
    tmp_path: Path,
    sandbox: Sandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sandbox/flux-schnell-four makes 4 images unless num_outputs says otherwise: the plan
    counts 4 once a pre-flight recorded its schema, says where each count came from, and what it
    estimates is what the sandbox then bills."""
    spec = write_spec(tmp_path, FOUR)
    assumed = _cost_line(_plan(spec, capsys), "four")
    assert assumed == (
        "  four: $0.018 for 6 predictions: 6 images (num_outputs assumed 1: no model schema"
        " recorded in this folder; `batchrun plan --online` asks the API) × per_image"
        " (price from jobs[0].price)"
    )
    assert "2 images (num_outputs from the input)" in _cost_line(_plan(spec, capsys), "two")

    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    online = _plan(spec, capsys, "--online", "--base-url", sandbox.base_url)
    assert (
        "$0.072 for 6 predictions: 24 images (num_outputs from the model's schema default (4))"
        in (_cost_line(online, "four"))
    )
    assert not (tmp_path / "run" / "preflight.json").exists()  # plan --online writes nothing

    run_spec(spec, sandbox, limit=1)  # its pre-flight records the schema in the run folder
    recorded = json.loads((tmp_path / "run" / "preflight.json").read_text())
    assert recorded["image_counts"] == {
        "sandbox/flux-schnell-four": {"published": True, "input": "num_outputs", "default": 4}
    }
    offline = _plan(spec, capsys)
    assert _cost_line(offline, "four") == (
        "  four: $0.06 for 5 predictions: 20 images (num_outputs from the model's schema"
        " default (4)) × per_image (price from jobs[0].price)"
    )
    rows = [json.loads(line) for line in _plan(spec, capsys, "--json").splitlines()]
    to_create = [row for row in rows if row["state"] == "new"]
    assert {
        (row["job"], row["cost"]["images"], row["cost"]["images_from"]) for row in to_create
    } == {
        ("four", 4, "schema"),
        ("two", 2, "input"),
    }
    estimated = sum(row["cost"]["estimated_usd"] for row in to_create)

    before = set(records(tmp_path / "run"))
    run_spec(spec, sandbox)
    made = {k: r for k, r in records(tmp_path / "run").items() if k not in before}
    assert {r.job: r.metrics["image_count"] for r in made.values()} == {"four": 4, "two": 2}
    assert sum(len(r.files) for r in made.values() if r.job == "four") == 20
    assert sum(r.spent for r in made.values()) == pytest.approx(estimated)


def test_the_image_count_says_where_each_part_came_from() -> None:
    """A job some of whose rows set the count (by either name) and some do not."""
    job = JobEstimate("mixed", Price(per_image=0.01), "price", schema=SchemaCount(default=4))
    for values in ({"num_images": 2}, {"num_outputs": 3}, {}):
        add(job, PlannedPrediction("k", "mixed", Target.parse("model", "a/b"), values, {}, 0))
    assert job.images == 2 + 3 + 4
    assert job.images_how() == (
        "num_images from the input, else num_outputs from the model's schema default (4)"
    )
