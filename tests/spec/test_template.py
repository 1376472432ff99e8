"""Templates: parsing, rendering, escapes, and the errors of a row that cannot fill one."""

from __future__ import annotations

import json

import pytest

from batchrun.spec.template import (
    MissingField,
    MissingVariable,
    Template,
    TemplateError,
    as_text,
)


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
