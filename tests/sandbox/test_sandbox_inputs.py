"""Checks on create requests: inputs the sandbox understands, Prefer and Cancel-After."""

from __future__ import annotations

from typing import Any

import pytest

from batchrun.sandbox.inputs import (
    InvalidField,
    check_input,
    describe,
    parse_duration,
    parse_prefer,
)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("wait", 60),
        ("wait=5", 5),
        ("wait=60", 60),
        ("wait=120", 60),
        ("wait=0", None),
        ("wait=soon", None),
        ("respond-async, wait=10", 10),
        ("return=minimal", None),
    ],
)
def test_parse_prefer(header: str | None, seconds: int | None) -> None:
    assert parse_prefer(header) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("1h30m45s", 5445),
     ("250ms", 0.25), ("1.5h", 5400), (" 2m ", 120)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "5x", "", "m5", "1h 30m", "-5s"])
def test_parse_duration_refuses_other_text(text: str) -> None:
    with pytest.raises(ValueError, match=r"^Cancel-After must be a duration such as 30s, 5m"):
        parse_duration(text)


def test_valid_inputs_pass_and_unknown_keys_are_free() -> None:
    inputs = {"prompt": "x", "seed": 1, "num_outputs": 4, "width": 64, "height": 2048, "go": 1}
    assert check_input(inputs) == []


def wrong_type(name: str, expected: str, given: str) -> InvalidField:
    message = f"Invalid type. Expected: {expected}, given: {given}"
    return InvalidField(f"input.{name}", "invalid_type", message)


def at_least(name: str, low: int) -> InvalidField:
    return InvalidField(f"input.{name}", "number_gte", f"Must be greater than or equal to {low}")


def one_of(name: str, *allowed: str) -> InvalidField:
    listed = ", ".join(f'"{item}"' for item in allowed)
    return InvalidField(
        f"input.{name}", "enum", f"input.{name} must be one of the following: {listed}"
    )


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({"seed": True}, wrong_type("seed", "integer", "boolean")),
        ({"seed": 1.5}, wrong_type("seed", "integer", "number")),
        ({"prompt": None}, wrong_type("prompt", "string", "null")),
        ({"sandbox_latency": "1"}, wrong_type("sandbox_latency", "number", "string")),
        ({"sandbox_error": 5}, wrong_type("sandbox_error", "string", "integer")),
        ({"num_outputs": 0}, at_least("num_outputs", 1)),
        ({"sandbox_latency": -1}, at_least("sandbox_latency", 0)),
        (
            {"sandbox_status": "done"},
            one_of("sandbox_status", "succeeded", "failed", "canceled", "aborted"),
        ),
        (
            {"sandbox_output": "video"},
            one_of("sandbox_output", "images", "tokens", "text", "dict", "number", "none"),
        ),
    ],
)
def test_invalid_inputs(inputs: dict[str, Any], problem: InvalidField) -> None:
    assert check_input(inputs) == [problem]


def test_describe_lists_one_field_a_line() -> None:
    fields = [InvalidField("input.a", "enum", "bad"), InvalidField("input.b", "enum", "worse")]
    assert describe(fields) == "- input.a: bad\n- input.b: worse\n"
