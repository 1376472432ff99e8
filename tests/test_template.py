"""Templates: parsing, rendering, escapes, and whole structures compiled once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.template import (
    MissingField,
    MissingVariable,
    RenderError,
    Template,
    TemplateError,
    as_text,
    compile_value,
)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_a_whole_value_reference_keeps_its_type() -> None:
    vars = {"seed": 3, "on": True, "row": {"size": [512, 512]}, "none": None}
    assert Template.compile("${seed}").render(vars) == 3
    assert Template.compile("${on}").render(vars) is True
    assert Template.compile("${row}").render(vars) == {"size": [512, 512]}
    assert Template.compile("${row.size}").render(vars) == [512, 512]
    assert Template.compile("${none}").render(vars) is None
    assert Template.compile("${ seed }").render(vars) == 3


def test_inside_text_values_render_as_compact_json() -> None:
    vars = {"seed": 3, "f": 1.5, "on": False, "n": None, "row": {"a": [1, "é"]}, "s": "fox"}
    text = "${s} ${seed} ${f} ${on} ${n} ${row}"
    assert Template.compile(text).render(vars) == 'fox 3 1.5 false null {"a":[1,"é"]}'


def test_fields_walk_mappings_and_list_positions() -> None:
    vars = {"row": {"prompt": "a fox", "tags": ["x", "y"], "first name": "Ada"}}
    assert Template.compile("${row.prompt}!").render(vars) == "a fox!"
    assert Template.compile("${row.tags.1}").render(vars) == "y"
    assert Template.compile("${row.first name}").render(vars) == "Ada"


def test_a_doubled_dollar_writes_a_literal_reference() -> None:
    template = Template.compile("cost $5, $$HOME, $${HOME} and ${x}")
    assert template.render({"x": 1}) == "cost $5, $$HOME, ${HOME} and 1"
    assert template.variables == frozenset({"x"})
    assert Template.compile("$${x}").is_constant
    assert Template.compile("$${x}").render({}) == "${x}"


def test_variables_and_refs() -> None:
    template = Template.compile("${a.b} ${c} ${a}")
    assert template.variables == frozenset({"a", "c"})
    assert [ref.text for ref in template.refs] == ["${a.b}", "${c}", "${a}"]
    assert template.whole is None
    assert Template.compile("plain").is_constant


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("a ${b", 2, "'${' is not closed by '}' (write $${ for a literal ${)"),
        (
            "${1x}",
            0,
            "${1x} is not a variable reference; expected ${name} or ${name.field}"
            " (write $${ for a literal ${)",
        ),
        (
            "x ${a..b}",
            2,
            "${a..b} is not a variable reference; expected ${name} or"
            " ${name.field} (write $${ for a literal ${)",
        ),
        (
            "${}",
            0,
            "${} is not a variable reference; expected ${name} or ${name.field}"
            " (write $${ for a literal ${)",
        ),
        (
            "${a${b}}",
            0,
            "${a${b} is not a variable reference; expected ${name} or"
            " ${name.field} (write $${ for a literal ${)",
        ),
    ],
)
def test_malformed_references(text: str, offset: int, message: str) -> None:
    with pytest.raises(TemplateError) as caught:
        Template.compile(text)
    assert (caught.value.offset, caught.value.message) == (offset, message)


def test_missing_variables_and_fields() -> None:
    with pytest.raises(MissingVariable) as missing:
        Template.compile("a ${animal}").render({"fruit": "pear"})
    assert missing.value.message == "this row has no variable 'animal'"
    assert missing.value.ref.name == "animal"
    with pytest.raises(MissingField) as field:
        Template.compile("${row.promt}").render({"row": {"prompt": "x", "seed": "1"}})
    assert (
        field.value.message == "${row.promt}: no field 'promt' here (the fields are prompt, seed)"
    )
    with pytest.raises(MissingField) as not_mapping:
        Template.compile("${seed.x}").render({"seed": 3})
    assert not_mapping.value.message == "${seed.x}: 'x' needs a mapping, but the value is 3"


def test_as_text_matches_compact_json_for_every_kind() -> None:
    for value in [1, -7, 10**30, 1.5, 1e-9, True, False, None, [1, "a"], {"k": {"z": 1}}]:
        assert as_text(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert as_text("as is") == "as is"


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
