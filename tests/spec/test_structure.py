"""Templated structures: a whole input compiled once, rendered (and encoded) per row."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.spec.structure import compile_value
from batchrun.spec.template import MissingVariable, RenderError, TemplateError


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_compile_value_renders_a_structure_per_row() -> None:
    compiled = compile_value(
        {
            "prompt": "${subject}, ${style}",
            "seed": "${seed}",
            "size": [512, "${w}"],
            "fixed": {"a": 1},
        }
    )
    assert compiled.variables == frozenset({"subject", "style", "seed", "w"})
    assert not compiled.constant
    first = compiled.render({"subject": "fox", "style": "ink", "seed": 1, "w": 640})
    second = compiled.render({"subject": "owl", "style": "oil", "seed": 2, "w": 768})
    assert first == {"prompt": "fox, ink", "seed": 1, "size": [512, 640], "fixed": {"a": 1}}
    assert second == {"prompt": "owl, oil", "seed": 2, "size": [512, 768], "fixed": {"a": 1}}
    assert list(first) == ["prompt", "seed", "size", "fixed"]
    # Constant parts are built once and shared: rendered values are read-only.
    assert first["fixed"] is second["fixed"]


def test_a_constant_structure_is_rendered_once() -> None:
    compiled = compile_value({"a": "$${x}", "b": [1, 2]})
    assert compiled.constant
    assert compiled.render({}) == {"a": "${x}", "b": [1, 2]}
    assert compiled.render({}) is compiled.render({"other": 1})


def test_a_compile_error_names_where_in_the_structure() -> None:
    with pytest.raises(TemplateError) as caught:
        compile_value({"a": ["ok", "${bad"]}, path=("input",))
    assert caught.value.where == ("input", "a", 1)


def test_render_errors_name_where_in_the_structure() -> None:
    compiled = compile_value({"a": {"b": "${x} and ${y}"}, "c": "${z}"})
    with pytest.raises(MissingVariable) as caught:
        compiled.render({"x": 1, "z": 2})
    assert caught.value.where == ("a", "b")
    with pytest.raises(MissingVariable) as whole:
        compiled.render({"x": 1, "y": 2})
    assert whole.value.where == ("c",)


def test_wraps_turn_special_mappings_into_objects() -> None:
    made: list[tuple[Any, tuple[str | int, ...]]] = []

    def make(path: Any, where: tuple[str | int, ...]) -> tuple[str, Any]:
        made.append((path, where))
        if path == "missing.png":
            raise RenderError("no such file", where)
        return ("FILE", path)

    compiled = compile_value(
        {"image": {"file": "${img}"}, "mask": {"file": "mask.png"}, "not": {"file": 3}},
        wraps={"file": make},
    )
    assert made == [("mask.png", ("mask", "file"))]  # the constant one, once, at compile time
    assert compiled.render({"img": "a.png"}) == {
        "image": ("FILE", "a.png"),
        "mask": ("FILE", "mask.png"),
        "not": {"file": 3},
    }
    with pytest.raises(RenderError) as caught:
        compiled.render({"img": "missing.png"})
    assert caught.value.where == ("image", "file")


def test_render_encoded_is_the_value_and_its_canonical_json() -> None:
    compiled = compile_value(
        {"z": "${a}", "b": ["${b}", {"y": '${a} é "q"', "x": 1}], "a": None},
        encode=canonical,
    )
    assert compiled.render_encoded is not None
    value, text = compiled.render_encoded({"a": {"k": [1.5, True]}, "b": 7})
    assert value == compiled.render({"a": {"k": [1.5, True]}, "b": 7})
    assert text == canonical(value)


json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet='ab$"}\\é ', max_size=6),
    st.sampled_from(["${v}", "x ${v} y", "${w.k}", "$${v}", "${v}${w}"]),
)
json_values = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=2), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(json_values, json_leaf, json_leaf)
def test_render_encoded_always_agrees_with_json_dumps(value: Any, v: Any, k: Any) -> None:
    compiled = compile_value(value, encode=canonical)
    assert compiled.render_encoded is not None
    rendered, text = compiled.render_encoded({"v": v, "w": {"k": k}})
    assert rendered == compiled.render({"v": v, "w": {"k": k}})
    assert text == canonical(rendered)
