"""Issue 22: the pre-flight's input checks are quick, and say exactly what they said before."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from batchrun.engine.modelschema import FieldChecker

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
