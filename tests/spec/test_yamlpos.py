"""yamlpos: plain values, the place of every value and key, and YAML's own problems."""

from __future__ import annotations

import pytest

from batchrun.errors import SpecError
from batchrun.spec.yamlpos import Places, format_path, parse_yaml, walk_strings

TEXT = """\
batchrun: 1
jobs:
  - model: acme/flux
    input:
      prompt: "a ${subject}"
      seed: 3
    matrix:
      subject: [fox, "old lighthouse"]
"""


def errors(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_yaml(text, "spec.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_values_are_plain_json_values() -> None:
    doc = parse_yaml(TEXT, "spec.yaml")
    assert doc.value == {
        "batchrun": 1,
        "jobs": [
            {
                "model": "acme/flux",
                "input": {"prompt": "a ${subject}", "seed": 3},
                "matrix": {"subject": ["fox", "old lighthouse"]},
            }
        ],
    }


def test_every_value_and_key_has_its_line_and_column() -> None:
    doc = parse_yaml(TEXT, "spec.yaml")
    assert doc.where(("jobs", 0, "input", "seed")) == (6, 13)
    assert doc.key_where(("jobs", 0, "input", "seed")) == (6, 7)
    assert doc.where(("jobs", 0, "matrix", "subject", 1)) == (8, 22)
    assert doc.where(("jobs", 0)) == (3, 5)


def test_a_missing_path_is_placed_at_its_nearest_ancestor() -> None:
    doc = parse_yaml(TEXT, "spec.yaml")
    assert doc.where(("jobs", 0, "input", "width")) == (5, 7)
    assert doc.key_where(("jobs", 0, "input", "width")) == (5, 7)


def test_find_places_a_needle_inside_a_quoted_string() -> None:
    doc = parse_yaml(TEXT, "spec.yaml")
    assert doc.find(("jobs", 0, "input", "prompt"), "${subject}") == (5, 18)
    assert doc.find(("jobs", 0, "input", "prompt"), "${absent}") == (5, 15)


def test_issue_names_the_file_the_place_and_the_path() -> None:
    doc = parse_yaml(TEXT, "spec.yaml")
    issue = doc.issue(("jobs", 0, "input", "seed"), "expected text, got 3")
    assert str(issue) == "spec.yaml:6:13: jobs[0].input.seed: expected text, got 3"
    at_key = doc.issue(("jobs", 0, "input", "seed"), "unknown field", at_key=True)
    assert str(at_key) == "spec.yaml:6:7: jobs[0].input.seed: unknown field"


def test_places_outlive_the_document() -> None:
    places = parse_yaml(TEXT, "spec.yaml").places()
    assert isinstance(places, Places)
    issue = places.issue(("jobs", 0, "include", 2), "no such row")
    assert str(issue) == "spec.yaml:3:5: jobs[0].include[2]: no such row"


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("jobs", 0, "matrix", "seed"), "jobs[0].matrix.seed"),
        (("input", "my key", 2), 'input["my key"][2]'),
        (("a-b", "c_d"), "a-b.c_d"),
        (("x", 'say "hi"'), 'x["say \\"hi\\""]'),
        ((), ""),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    assert errors("a: 1\nb: 2\na: 3\n") == ["spec.yaml:3:1: a: duplicate key 'a' (first at line 1)"]


def test_a_syntax_error_is_placed_at_its_own_mark() -> None:
    assert errors("jobs: [1, 2\n") == [
        "spec.yaml:2:1: not valid YAML: did not find expected ',' or ']'"
        " (while parsing a flow sequence at line 1)"
    ]


def test_keys_are_text_even_when_yaml_reads_them_as_numbers() -> None:
    assert parse_yaml("1: a\non: b\nnull: c\n", "s.yaml").value == {
        "1": "a",
        "on": "b",
        "null": "c",
    }


def test_a_key_that_is_a_list_is_an_error() -> None:
    assert errors("? [1, 2]\n: x\n") == [
        "spec.yaml:1:3: a key must be plain text, not a list or mapping"
    ]


def test_tags_other_than_plain_yaml_are_errors() -> None:
    assert errors("a: !shout hello\n") == [
        "spec.yaml:1:4: a: unsupported YAML tag !shout; use plain YAML values"
    ]


def test_explicit_str_tags_and_dates_stay_text() -> None:
    assert parse_yaml("a: !!str 12\nb: 2024-01-02\n", "s.yaml").value == {
        "a": "12",
        "b": "2024-01-02",
    }


def test_nan_and_infinity_are_errors() -> None:
    assert errors("a: .nan\nb: -.inf\n") == [
        "spec.yaml:1:4: a: .nan is not a finite number; JSON cannot carry it",
        "spec.yaml:2:4: b: -.inf is not a finite number; JSON cannot carry it",
    ]


def test_an_alias_that_contains_itself_is_an_error() -> None:
    assert errors("a: &x [1, *x]\n") == [
        "spec.yaml:1:4: a[1]: this alias refers to a value that contains it"
    ]


def test_aliases_and_merge_keys_work() -> None:
    text = "base: &b {width: 512}\njob:\n  <<: *b\n  seed: 1\nagain: *b\n"
    assert parse_yaml(text, "s.yaml").value == {
        "base": {"width": 512},
        "job": {"width": 512, "seed": 1},
        "again": {"width": 512},
    }


def test_one_document_only() -> None:
    assert errors("a: 1\n---\nb: 2\n") == [
        "spec.yaml:2:1: not valid YAML: but found another document"
        " (expected a single document in the stream at line 1)"
    ]


def test_an_empty_document_is_none() -> None:
    assert parse_yaml("# nothing\n", "s.yaml").value is None


def test_control_characters_are_placed() -> None:
    assert errors("a: b\nc: \x07\n") == [
        "spec.yaml:2:4: not valid YAML: unacceptable character #x0007:"
        " control characters are not allowed"
    ]


def test_walk_strings_yields_every_string_with_its_path() -> None:
    value = {"a": "x", "b": [1, "y", {"c": "z"}]}
    assert list(walk_strings(value, ("input",))) == [
        (("input", "a"), "x"),
        (("input", "b", 1), "y"),
        (("input", "b", 2, "c"), "z"),
    ]
