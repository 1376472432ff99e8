"""Budgets, timeouts and costs against the sandbox: what a run spends never passes its budget,
a prediction past its timeout is canceled, and every record says what it cost."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from runs import records, run_argv, run_spec, write_spec

from batchrun.cli import main
from batchrun.cost import Price
from batchrun.sandbox import Sandbox

CANCEL_ROUTE = "POST /v1/predictions/{prediction_id}/cancel"


def _spent(run_dir: Path, price: Price) -> float:
    """What the sandbox's metrics say the run cost at `price` (not the records' own sums)."""
    total = 0.0
    for record in records(run_dir).values():
        succeeded = record.status == "succeeded"
        total += price.cost(record.metrics, files=len(record.files), succeeded=succeeded)
    return total


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    count=st.integers(min_value=1, max_value=40),
    concurrency=st.integers(min_value=1, max_value=50),
    images=st.integers(min_value=1, max_value=3),
    per_image=st.sampled_from([0.0, 0.001, 0.003, 0.04]),
    per_second=st.sampled_from([0.0, 0.01, 0.5]),
    # Milliseconds, written with a dot (YAML reads a bare `1e-09` as a string, not a number),
    # and each once: a matrix axis refuses a repeated value.
    latencies=st.lists(
        st.floats(min_value=0.0, max_value=0.3).map(lambda s: round(s, 3)),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    share=st.floats(min_value=0.0, max_value=1.2),
)
def test_what_is_spent_never_passes_the_budget(
    make_sandbox: Callable[..., Sandbox],
    tmp_path: Path,
    count: int,
    concurrency: int,
    images: int,
    per_image: float,
    per_second: float,
    latencies: list[float],
    share: float,
) -> None:
    price = Price(per_prediction=0.001, per_image=per_image, per_second=per_second)
    timeout = 1.0
    ceiling = price.per_prediction + price.per_image * images + price.per_second * timeout
    budget = round(max(ceiling * count * share, 0.0001), 6)
    sandbox = make_sandbox()
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    lats = ", ".join(f"{s:.3f}" for s in latencies)
    spec = write_spec(
        folder,
        f"""
        batchrun: 1
        budget: {budget}
        timeout: {timeout}
        concurrency: {concurrency}
        jobs:
          - model: acme/painter
            price: {price.to_json()}
            input: {{prompt: "p${{i}}", num_outputs: {images}, sandbox_latency: "${{lat}}"}}
            matrix: {{i: {{range: [0, {count}]}}, lat: [{lats}]}}
        """,
    )
    summary = run_spec(spec, sandbox)

    made = records(folder / "run")
    spent = _spent(folder / "run", price)
    assert spent <= budget + 1e-9
    assert sum(r.spent for r in made.values()) == pytest.approx(spent, abs=1e-9)
    planned = count * len(set(latencies))
    if ceiling * planned <= budget:
        assert summary.ok
        assert len(made) == planned
    elif summary.budget.reached:
        event("the budget stopped the run")
        # It stopped only when the next prediction's most possible cost would not fit.
        assert summary.left == planned - len(made)
        assert summary.budget.refused_at is not None
        spent_then, reserved_then, asked = summary.budget.refused_at
        assert spent_then + reserved_then + asked > budget
    else:
        assert summary.ok  # what ran cost less than it might have: everything fit


def test_the_budget_is_the_folders_same_again_creates_nothing_raised_goes_on(
    tmp_path: Path,
    sandbox: Sandbox,
    token_in_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        budget: 0.05
        concurrency: 4
        jobs:
          - model: acme/painter
            price: {per_image: 0.003}
            input: {prompt: "p${i}", num_outputs: 2}
            matrix: {i: {range: [0, 15]}}
        """,
    )
    command = run_argv(spec, sandbox, out=tmp_path / "run")
    assert main([*command, "--progress", "none"]) == 1
    said = capsys.readouterr().err
    assert "batchrun: the budget of $0.05 is reached" in said
    assert "budget reached: $0.048 of $0.05 spent (estimated from your prices)" in said
    assert "7 not started: raise the budget (--budget USD, or `budget:` in the spec)" in said
    assert sandbox.state.snapshot()["creates"] == 8

    assert main([*command, "--progress", "none"]) == 1
    assert sandbox.state.snapshot()["creates"] == 8
    assert "7 not started" in capsys.readouterr().err

    assert main([*command, "--progress", "none", "--budget", "0.2"]) == 0
    assert sandbox.state.snapshot()["creates"] == 15
    assert "cost: $0.042 in this run, $0.09 in this folder of the budget of $0.20" in (
        capsys.readouterr().err
    )


def test_a_timeout_cancels_and_counts_what_it_cost(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(latency=30.0)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            timeout: 0.5s
            price: {per_second: 0.01}
            input: {prompt: "p${i}"}
            matrix: {i: [1, 2, 3]}
          - model: acme/quick
            timeout: 10
            price: {per_second: 0.01}
            input: {prompt: "fast", sandbox_latency: 0.05}
        """,
    )
    summary = run_spec(spec, sandbox)

    assert sandbox.state.snapshot()["requests"].get(CANCEL_ROUTE) == 3
    by_job = {}
    for record in records(tmp_path / "run").values():
        by_job.setdefault(record.job, []).append(record)
    assert {r.status for r in by_job["painter"]} == {"canceled"}
    for record in by_job["painter"]:
        assert record.error == "canceled by batchrun: it ran longer than the job's timeout (0.5s)"
        assert record.cost == pytest.approx(record.metrics["predict_time"] * 0.01)
        assert record.price == {"per_second": 0.01}
    assert [r.status for r in by_job["quick"]] == ["succeeded"]
    assert summary.tally.finished == {"canceled": 3, "succeeded": 1}


def test_token_prices_on_a_language_model(tmp_path: Path, sandbox: Sandbox) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        budget: 1
        jobs:
          - model: meta/llama-3-8b
            price: {per_million_input_tokens: 50, per_million_output_tokens: 250}
            input: {prompt: "${p}", max_tokens: 4}
            matrix: {p: [a short prompt, "a longer prompt about lighthouses and the sea"]}
        """,
    )
    summary = run_spec(spec, sandbox)

    assert summary.ok
    for record in records(tmp_path / "run").values():
        metrics = record.metrics
        assert metrics["input_token_count"] == len(record.vars["p"].split())
        assert 0 < metrics["output_token_count"] <= 4
        assert len(record.output) == metrics["output_token_count"]
        expected = (metrics["input_token_count"] * 50 + metrics["output_token_count"] * 250) / 1e6
        assert record.cost == pytest.approx(expected)
    assert summary.budget.spent_now == pytest.approx(
        sum(r.cost or 0 for r in records(tmp_path / "run").values())
    )


def test_cost_in_status_report_and_export(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            price: {per_image: 0.01}
            input: {prompt: "a ${style} fox", num_outputs: "${n}"}
            matrix: {style: [ink, oil], n: [1, 3]}
            exclude: [{style: ink, n: 3}]
          - model: acme/free
            input: {prompt: "free"}
        """,
    )
    run_spec(spec, sandbox)
    run_dir = tmp_path / "run"

    assert main(["status", str(run_dir)]) == 0
    said = capsys.readouterr().out
    assert "cost: $0.05 (estimated from your prices); by job: painter $0.05" in said
    assert main(["status", str(run_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost"] == {
        "estimated_from": "your prices",
        "total_usd": pytest.approx(0.05),
        "jobs": {"painter": pytest.approx(0.05)},
        "priced_predictions": 3,
    }

    page = tmp_path / "report.html"
    assert main(["report", str(run_dir), "--output", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert "<dt>cost by style</dt><dd>oil $0.04, ink $0.01</dd>" in html
    assert "<dt>cost by n</dt><dd>3 $0.03, 1 $0.02</dd>" in html

    rows = tmp_path / "rows.csv"
    assert main(["export", str(run_dir), "--format", "csv", "--to", str(rows)]) == 0
    with rows.open(encoding="utf-8", newline="") as handle:
        costs = {(r["job"], r["style"], r["n"]): r["cost"] for r in csv.DictReader(handle)}
    assert costs == {
        ("painter", "ink", "1"): "0.01",
        ("painter", "oil", "1"): "0.01",
        ("painter", "oil", "3"): "0.03",
        ("free", "", ""): "",
    }


def test_status_csv_carries_each_rows_cost(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            price: {per_prediction: 0.002, per_image: 0.01}
            input: {prompt: "a fox", num_outputs: "${n}"}
            matrix: {n: [1, 2, 3]}
          - model: acme/free
            input: {prompt: "free"}
        """,
    )
    run_spec(spec, sandbox)
    run_dir = tmp_path / "run"
    assert main(["status", str(run_dir), "--csv", "-"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    costs = {(row["job"], json.loads(row["vars"]).get("n")): row["cost"] for row in rows}
    assert costs == {
        ("painter", 1): "0.012",
        ("painter", 2): "0.022",
        ("painter", 3): "0.032",
        ("free", None): "",  # no price: no cost, not $0
    }
    by_key = {row["key"]: row for row in rows}
    for key, record in records(run_dir).items():
        assert by_key[key]["cost"] == ("" if record.cost is None else str(record.estimated_cost))


def test_the_budget_reserves_the_images_a_model_makes_by_its_schemas_default(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    """sandbox/flux-schnell-four makes 4 images when the input sets no num_outputs: each create
    reserves 4 × per_image (reserving 1 would let four in flight at once spend $0.16)."""
    sandbox = make_sandbox(latency=0.3)
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        budget: 0.1
        concurrency: 4
        files: "${key}-${index}${ext}"
        jobs:
          - model: sandbox/flux-schnell-four
            price: {per_image: 0.01}
            input: {prompt: "p${i}"}
            matrix: {i: {range: [0, 5]}}
        """,
    )
    summary = run_spec(spec, sandbox)
    made = records(tmp_path / "run")
    assert summary.budget.refused_at is not None
    assert summary.budget.refused_at[2] == pytest.approx(0.04)  # what the third create asked
    assert len(made) == 2
    assert sandbox.state.snapshot()["creates"] == 2
    assert {r.metrics["image_count"] for r in made.values()} == {4}
    assert _spent(tmp_path / "run", Price(per_image=0.01)) == pytest.approx(0.08)
    assert summary.left == 3
