"""Issue 22: the pre-flight's input checks are quick, and say exactly what they said before."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from runs import TOKEN, RunCli, write_spec

from batchrun.engine import preflight
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


# Each row's prompt is its own; steps 1 to 8 come back in every `r`, those over 4 refused.
MANY = """
batchrun: 1
jobs:
  - model: acme/painter
    input: {{prompt: "p${{i}} ${{r}}", steps: "${{i}}"}}
    matrix: {{r: {{range: [0, {rows}]}}, i: {{range: [1, 9]}}}}
"""


def _peak_of_check(tmp_path: Path, rows: int) -> int:
    folder = tmp_path / str(rows)
    folder.mkdir()
    spec = load_spec(write_spec(folder, MANY.format(rows=rows)))
    tracemalloc.start()
    try:
        check_inputs(spec, spec.jobs[0], {"components": COMPONENTS})
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_checking_a_prompt_per_row_keeps_no_answer_per_row(tmp_path: Path) -> None:
    # 2,000 and 3,000 planned inputs (each a prompt of its own): the walk's table of keys is
    # of one size for both, so what grows with the rows is what the check keeps of them.
    # Keeping every answer held about 90 bytes a row here. (The first check imports what
    # checks a schema: it is not measured.)
    _peak_of_check(tmp_path, 1)
    small, large = _peak_of_check(tmp_path, 250), _peak_of_check(tmp_path, 375)
    assert (large - small) / 1000 < 20


def test_answers_forgotten_are_given_again_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = load_spec(write_spec(tmp_path, MANY.format(rows=3)))
    checks = 0
    check = FieldChecker.check

    def counted(self: FieldChecker, name: str, value: Any) -> Any:
        nonlocal checks
        checks += 1
        return check(self, name, value)

    monkeypatch.setattr(FieldChecker, "check", counted)
    said = check_inputs(spec, spec.jobs[0], {"components": COMPONENTS})
    kept_all = checks
    monkeypatch.setattr(preflight, "ANSWERS_KEPT", 2)
    checks = 0
    assert check_inputs(spec, spec.jobs[0], {"components": COMPONENTS}) == said
    assert "in the row {r: 0, i: 5} and 11 more" in str(said[1][0])
    assert checks > kept_all  # values met again after the memo was cleared were checked again
