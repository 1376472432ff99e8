"""The price rule (batchrun/cost.py) and a spec's prices, budget and timeouts (spec/money.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from batchrun.cost import (
    Bounds,
    Price,
    SchemaCount,
    asked_by,
    bounds,
    count_from,
    count_source,
    images_asked,
    money,
    parse_duration,
    signed_money,
)
from batchrun.errors import SpecError
from batchrun.spec.load import load_spec


def test_parts_add_up_and_failures_pay_only_for_what_ran() -> None:
    price = Price(per_prediction=0.01, per_image=0.003, per_second=0.001)
    metrics = {"predict_time": 2.0, "image_count": 2}
    assert price.cost(metrics, files=5, succeeded=True) == pytest.approx(0.01 + 0.006 + 0.002)
    assert price.cost(metrics, files=5, succeeded=False) == pytest.approx(0.002)
    # Without image_count, the output's files are the images.
    assert price.cost({}, files=3, succeeded=True) == pytest.approx(0.01 + 0.009)


def test_token_prices() -> None:
    price = Price(per_million_input_tokens=0.05, per_million_output_tokens=0.25)
    metrics = {"input_token_count": 1_000_000, "output_token_count": 2_000_000}
    assert price.cost(metrics, files=0, succeeded=True) == pytest.approx(0.55)


def test_images_come_from_the_input_else_the_schemas_default_else_one() -> None:
    four = SchemaCount(default=4)
    assert images_asked({"num_outputs": 2}, four) == 2
    assert images_asked({"num_outputs": 0}, four) == 0
    assert images_asked({}, four) == 4
    assert images_asked({"num_outputs": True}, four) == 4  # a flag is no count
    assert images_asked({"num_images": 3}, four) == 3  # as some models name it
    assert bounds({"num_images": 3}, None).images == 3
    assert asked_by({"num_images": 3}) == "num_images"
    assert asked_by({"num_outputs": 2, "num_images": 3}) == "num_outputs"
    assert asked_by({"prompt": "x"}) is None
    assert images_asked({}, SchemaCount(default=None)) == 1  # the model takes no num_outputs
    assert images_asked({}, SchemaCount(published=False)) == 1
    assert images_asked({}, None) == 1
    # The budget reserves by the same rule the estimate counts with.
    assert bounds({}, None, four).images == 4
    assert [count_from(values, four) for values in ({"num_outputs": 1}, {})] == ["input", "schema"]
    assert count_from({}, SchemaCount(published=False)) == "assumed"
    assert count_from({}, None) == "assumed"
    assert count_source(four) == "num_outputs from the model's schema default (4)"
    assert "no model schema recorded" in count_source(None)
    assert "publishes no input schema" in count_source(SchemaCount(published=False))


def test_a_schema_count_is_read_from_cog_properties_and_the_record() -> None:
    properties = {"num_outputs": {"type": "integer", "default": 4, "maximum": 4}}
    assert SchemaCount.of_input(properties) == SchemaCount(default=4)
    assert SchemaCount.of_input({"prompt": {"type": "string"}}) == SchemaCount(default=None)
    assert SchemaCount.of_input(None) == SchemaCount(published=False)
    images = SchemaCount.of_input({"num_images": {"type": "integer", "default": 2}})
    assert images == SchemaCount(default=2, input="num_images")
    assert count_source(images) == "num_images from the model's schema default (2)"
    assert SchemaCount.from_json(images.to_json()) == images
    assert SchemaCount.from_json({"published": True, "input": "n", "default": 2}) == (
        SchemaCount(default=2)  # an input it does not know is read as num_outputs
    )
    # A default that is no whole number of images says nothing.
    for default in (-1, 2.5, "4", True, math.inf):
        assert SchemaCount.of_input({"num_outputs": {"default": default}}).default is None
    assert SchemaCount.from_json(SchemaCount(default=4).to_json()) == SchemaCount(default=4)
    assert SchemaCount.from_json({"default": 4}) is None
    assert SchemaCount.from_json([]) is None


def test_ceiling_is_exact_or_bounded_or_infinite() -> None:
    assert Price(per_image=0.003).ceiling(Bounds(images=4)) == pytest.approx(0.012)
    assert Price(per_second=0.5).ceiling(Bounds(seconds=10)) == pytest.approx(5.0)
    assert Price(per_second=0.5).ceiling(Bounds()) == math.inf
    tokens = Price(per_million_output_tokens=1.0)
    assert tokens.ceiling(Bounds(output_tokens=500)) == pytest.approx(0.0005)
    assert tokens.ceiling(Bounds()) == math.inf


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("1h30m", 5400), ("2.5m", 150), (7, 7)]
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m", "-3s", 0, True, "5 minutes"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 90s, 5m or 1h30m"):
        parse_duration(text)


def test_money() -> None:
    assert money(1.2) == "$1.20"
    assert money(0.003) == "$0.003"
    assert money(0) == "$0"
    assert signed_money(0.1) == "+$0.10"
    assert signed_money(-1.2) == "-$1.20"


def _errors(folder: Path, text: str) -> list[str]:
    (folder / "spec.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_spec(folder / "spec.yaml")
    return [str(issue).replace(str(folder) + "/", "") for issue in caught.value.issues]


def test_a_jobs_price_then_the_list_then_the_top(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(
        "acme/flux: {per_image: 0.003}\nacme/llm: {per_second: 0.001}\n", encoding="utf-8"
    )
    (tmp_path / "spec.yaml").write_text(
        "batchrun: 1\nprice: {per_prediction: 0.5}\nprices: prices.yaml\ntimeout: 5m\n"
        "budget: 25\njobs:\n"
        "  - {model: acme/flux, input: {prompt: a}}\n"
        "  - {model: acme/llm, timeout: 90, input: {prompt: b}}\n"
        "  - {model: acme/other, input: {prompt: c}}\n"
        "  - {model: acme/flux, id: own, price: {per_image: 0.01}, input: {prompt: d}}\n",
        encoding="utf-8",
    )
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.budget == 25.0
    prices = {job.id: (job.price, job.price_source, job.timeout) for job in spec.jobs}
    assert prices == {
        "flux": (Price(per_image=0.003), "prices.yaml", 300.0),
        "llm": (Price(per_second=0.001), "prices.yaml", 90.0),
        "other": (Price(per_prediction=0.5), "price", 300.0),
        "own": (Price(per_image=0.01), "jobs[3].price", 300.0),
    }


def test_a_budget_needs_every_cost_bounded(tmp_path: Path) -> None:
    found = _errors(
        tmp_path,
        "batchrun: 1\nbudget: 10\njobs:\n"
        "  - model: acme/flux\n    input: {prompt: a}\n"
        "  - model: acme/slow\n    price: {per_second: 0.001}\n    input: {prompt: b}\n"
        "  - model: meta/llama\n    price: {per_million_output_tokens: 0.25}\n"
        "    input: {prompt: c}\n"
        "  - model: meta/bounded\n    price: {per_million_output_tokens: 0.25}\n"
        "    input: {prompt: c, max_tokens: 100}\n",
    )
    assert found == [
        "spec.yaml:2:9: budget: job 'flux' has no price, so the budget cannot bound what it"
        " spends; give it a `price` (or its model an entry in the `prices` file)",
        "spec.yaml:7:25: jobs[1].price.per_second: job 'slow' pays per second and has no"
        " `timeout`, so a prediction's cost has no bound and the budget cannot be kept; add"
        " `timeout: 5m` (or what its predictions may take)",
        "spec.yaml:10:40: jobs[2].price.per_million_output_tokens: job 'llama' pays per output"
        " token and its input sets no max_tokens or max_new_tokens, so a prediction's cost has"
        " no bound and the budget cannot be kept; add `max_tokens` to its input",
    ]


def test_schema_refuses_bad_prices_and_durations(tmp_path: Path) -> None:
    found = _errors(
        tmp_path,
        "batchrun: 1\ntimeout: 5 minutes\nbudget: 0\njobs:\n"
        "  - {model: acme/a, price: {per_imag: 1}, input: {prompt: a}}\n",
    )
    assert len(found) == 3
    assert found[0].startswith("spec.yaml:2:10: timeout: expected a duration like 90s")


def test_prices_file_errors_are_placed_in_it(tmp_path: Path) -> None:
    (tmp_path / "prices.yaml").write_text(
        "acme/a: {per_image: -1}\nnot-a-model: {per_image: 1}\n", encoding="utf-8"
    )
    found = _errors(
        tmp_path, "batchrun: 1\nprices: prices.yaml\njobs:\n  - {model: acme/a, input: {}}\n"
    )
    assert found == [
        'prices.yaml:1:21: ["acme/a"].per_image: expected a number of USD, 0 or more, got -1',
        "prices.yaml:2:1: not-a-model: expected a model as owner/name, got 'not-a-model'",
    ]
