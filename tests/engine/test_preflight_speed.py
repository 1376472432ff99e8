"""Issue 22: the pre-flight's input checks are quick, and say exactly what they said before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from runs import TOKEN, RunCli, write_spec

from batchrun.engine.modelschema import FieldChecker
from batchrun.engine.preflight import check_inputs
from batchrun.planner.expand import Shard
from batchrun.planner.sample import Selection, iter_selected
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

ENUM = ["1:1", "16:9", "3:2"]
PROPERTIES: dict[str, Any] = {
    "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
    "seed": {"type": "integer", "title": "Seed"},
    "steps": {"type": "integer", "minimum": 1, "maximum": 4, "default": 4},
    "scale": {"type": "number", "minimum": 0.5, "maximum": 10},
    "go_fast": {"type": "boolean", "default": True},
    "ratio": {"allOf": [{"$ref": "#/components/schemas/ratio"}], "default": "1:1"},
    "image": {"type": "string", "format": "uri"},
    "anything": {"title": "Anything"},
    "many": {"type": "array", "items": {"type": "integer"}},
}
COMPONENTS = {
    "schemas": {
        "Input": {"type": "object", "properties": PROPERTIES},
        "ratio": {"type": "string", "enum": ENUM},
    }
}
VALUES = [
    "a fox", "", "16:9", "9:16", 0, 1, 4, 5, -3, 2**70, 0.5, 1.0, 2.5, 11.0, -0.0,
    float("nan"), float("inf"), True, False, None, [1, 2], [1, "x"], {"a": 1}, "x y",
]  # fmt: skip


def _jsonschema_says(name: str, value: Any) -> tuple[str, str] | None:
    """What jsonschema alone says of the value (the pre-flight's answer before issue 22)."""
    schema = {"components": COMPONENTS, "$ref": f"#/components/schemas/Input/properties/{name}"}
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path)
    )
    return (str(errors[0].validator), errors[0].message) if errors else None


@pytest.mark.parametrize("name", sorted(PROPERTIES))
def test_the_quick_path_agrees_with_jsonschema_on_every_value(name: str) -> None:
    fields = FieldChecker(COMPONENTS)
    for value in VALUES:
        error = fields.check(name, value)
        said = (str(error.validator), error.message) if error is not None else None
        assert said == _jsonschema_says(name, value), (name, value)


# Steps 1 to 4 fit acme/strict-painter; every later row's are over its maximum.
STEPS = """
batchrun: 1
jobs:
  - model: acme/strict-painter
    input: {prompt: "p${i}", num_inference_steps: "${i}", output_format: png}
    matrix: {i: {range: [1, 9]}}
"""


def test_run_checks_only_the_inputs_its_limit_selects(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    spec = write_spec(tmp_path, STEPS)
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url, "--limit", "1")
    assert (code, err.count("refuses this value")) == (0, 0)
    assert int(sandbox.state.snapshot()["creates"]) == 1
    # The whole plan, in the same folder: the rows --limit left unchecked are checked now,
    # before any create (the recorded pre-flight covered one input only).
    code, _, err = run_cli("run", str(spec), "--base-url", sandbox.base_url)
    assert code == 2  # the whole plan holds rows the model refuses
    assert "5 is more than the maximum 4; in the row {i: 5} and 3 more" in err
    assert int(sandbox.state.snapshot()["creates"]) == 1


@pytest.mark.parametrize(
    ("selection", "checked"),
    [
        (None, 8),
        (Selection(limit=1), 1),
        (Selection(limit=3), 3),
        (Selection(sample=2), 2),
        (Selection(shard=Shard(1, 2), limit=100), None),
    ],
)
def test_check_inputs_checks_what_the_selection_selects(
    tmp_path: Path, selection: Selection | None, checked: int | None
) -> None:
    spec = load_spec(write_spec(tmp_path, STEPS))
    schema = {"components": COMPONENTS}
    found, _, _ = check_inputs(spec, spec.jobs[0], schema, selection=selection)
    expected = checked if checked is not None else sum(1 for _ in iter_selected(spec, selection))
    assert 0 < found == expected
