"""Checks on what a create request carries: the inputs the sandbox understands and its headers.

Invalid inputs are reported the way Replicate reports them (its validator's wording):
`{"type": "number_lte", "field": "input.num_outputs", "description": "Must be less than or
equal to 4"}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from batchrun.sandbox.outputs import OUTPUT_MODES

FORCED_STATUSES = ("succeeded", "failed", "canceled", "aborted")
MAX_WAIT = 60
# The limits enforced here, and published in each model's schema (models.openapi_schema).
BOUNDS = {"num_outputs": (1, 4), "width": (64, 2048), "height": (64, 2048)}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True, order=True)
class InvalidField:
    """One refused field, as Replicate's `invalid_fields` lists it."""

    field: str
    type: str
    description: str

    def to_json(self) -> dict[str, str]:
        """The entry of `invalid_fields`."""
        return {"type": self.type, "field": self.field, "description": self.description}


def json_type(value: object) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def wrong_type(field: str, expected: str, value: object) -> InvalidField:
    """A 422's `invalid_type` entry, worded as Replicate's."""
    given = json_type(value)
    return InvalidField(
        field, "invalid_type", f"Invalid type. Expected: {expected}, given: {given}"
    )


def check_input(inputs: Mapping[str, Any]) -> list[InvalidField]:
    """Every problem with the inputs the sandbox understands, sorted by field."""
    return sorted(_check(inputs))


def _check(inputs: Mapping[str, Any]) -> Iterable[InvalidField]:
    for name in ("prompt", "sandbox_error"):
        if name in inputs and not isinstance(inputs[name], str):
            yield wrong_type(f"input.{name}", "string", inputs[name])
    for name in ("seed", *BOUNDS):
        if name not in inputs:
            continue
        value = inputs[name]
        if json_type(value) != "integer":
            yield wrong_type(f"input.{name}", "integer", value)
        elif name in BOUNDS:
            yield from _bounds(f"input.{name}", value, *BOUNDS[name])
    if "sandbox_latency" in inputs:
        value = inputs["sandbox_latency"]
        if json_type(value) not in ("integer", "number"):
            yield wrong_type("input.sandbox_latency", "number", value)
        else:
            yield from _bounds("input.sandbox_latency", value, 0, 86400)
    for name, allowed in (("sandbox_status", FORCED_STATUSES), ("sandbox_output", OUTPUT_MODES)):
        if name in inputs and inputs[name] not in allowed:
            listed = ", ".join(f'"{item}"' for item in allowed)
            description = f"input.{name} must be one of the following: {listed}"
            yield InvalidField(f"input.{name}", "enum", description)


def _bounds(field: str, value: float, low: float, high: float) -> Iterable[InvalidField]:
    if value < low:
        yield InvalidField(field, "number_gte", f"Must be greater than or equal to {low}")
    if value > high:
        yield InvalidField(field, "number_lte", f"Must be less than or equal to {high}")


def describe(fields: Iterable[InvalidField]) -> str:
    """The problem `detail` Replicate writes for invalid fields: one `- field: reason` a line."""
    return "".join(f"- {item.field}: {item.description}\n" for item in fields)


def parse_prefer(header: str | None) -> int | None:
    """Seconds to hold a create for (`wait` alone is 60, at most 60), or None for no wait."""
    if not header:
        return None
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        if not value.strip():
            return MAX_WAIT
        try:
            seconds = int(value.strip())
        except ValueError:
            return None
        return min(seconds, MAX_WAIT) if seconds > 0 else None
    return None


def parse_duration(text: str) -> float:
    """Seconds in a `Cancel-After` value: `90`, `30s`, `5m`, `1h30m`, `250ms`.

    Raises ValueError with a sentence naming the accepted forms.
    """
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(
            f"Cancel-After must be a duration such as 30s, 5m, 1h30m or 90, got {text!r}"
        )
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(number) * scale[unit] for number, unit in parts)
