"""The JSON Schema file, and its errors turned into placed sentences."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batchrun.spec import target
from batchrun.spec.schema import check_structure, load_schema
from batchrun.spec.yamlpos import parse_yaml

ROOT = Path(__file__).resolve().parents[2]


def messages(text: str) -> list[str]:
    doc = parse_yaml(text, "spec.yaml")
    return sorted(str(issue) for _, issue in check_structure(doc))


def test_the_repo_path_and_the_package_data_are_one_file() -> None:
    link = ROOT / "schemas" / "batchrun.schema.json"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "batchrun" / "data" / "batchrun.schema.json").resolve()
    assert json.loads(link.read_text(encoding="utf-8")) == load_schema()


def test_the_schema_is_valid_draft_2020_12() -> None:
    schema = load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _objects(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        if "properties" in node:
            found.append((where, node))
        for key, value in node.items():
            found.extend(_objects(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_objects(value, f"{where}/{i}"))
    return found


def test_every_field_has_a_description_and_objects_are_strict() -> None:
    for where, node in _objects(load_schema()):
        assert node.get("additionalProperties") is False, where
        for name, field in node["properties"].items():
            assert field.get("description"), f"{where}/properties/{name}"


@pytest.mark.parametrize("kind", ["model", "version", "deployment"])
def test_target_patterns_and_messages_match_target_parse(kind: str) -> None:
    field = load_schema()["$defs"]["job"]["properties"][kind]
    assert field["pattern"] == target.PATTERNS[kind]
    assert field["patternErrorMessage"] == target.EXPECTED[kind]


def test_a_good_spec_has_no_errors() -> None:
    assert messages("batchrun: 1\njobs:\n  - model: a/b\n    input: {prompt: hi}\n") == []


def test_an_unknown_field_is_placed_at_its_key_with_a_suggestion() -> None:
    text = "batchrun: 1\nconcurency: 4\njobs:\n  - model: a/b\n    input: {}\n    colour: 1\n"
    assert messages(text) == [
        "spec.yaml:2:1: concurency: unknown field; did you mean 'concurrency'?",
        "spec.yaml:6:5: jobs[0].colour: unknown field; the fields here are id, model, version,"
        " deployment, concurrency, price, timeout, input, matrix, exclude, include, repeat, files",
    ]


def test_a_missing_required_field_is_placed_at_the_mapping() -> None:
    assert messages("batchrun: 1\njobs:\n  - model: a/b\n") == [
        "spec.yaml:3:5: jobs[0]: missing required field 'input'"
    ]


def test_wrong_types_say_what_was_expected_and_what_came() -> None:
    text = (
        "batchrun: 1\nconcurrency: ten\nwait: 90\njobs:\n"
        "  - model: a/b\n    input: []\n    repeat: 0\n    version: 0123\n"
    )
    assert messages(text) == [
        "spec.yaml:2:14: concurrency: expected a whole number, got 'ten'",
        "spec.yaml:3:7: wait: expected a number from 1 to 60, got 90",
        "spec.yaml:6:12: jobs[0].input: expected a mapping, got []",
        "spec.yaml:7:13: jobs[0].repeat: expected a number of at least 1, got 0",
        "spec.yaml:8:14: jobs[0].version: expected text, got 83"
        " (YAML reads it as a number or true/false; put it in quotes)",
    ]


def test_the_format_version_is_1() -> None:
    assert messages("batchrun: 2\njobs: [{model: a/b, input: {}}]\n") == [
        "spec.yaml:1:11: batchrun: expected 1 (the only format version so far), got 2"
    ]


def test_patterns_use_their_sentence() -> None:
    text = "batchrun: 1\nrate: 10 per minute\njobs:\n  - model: flux\n    input: {}\n"
    assert messages(text) == [
        "spec.yaml:2:7: rate: expected N/s, N/min or N/h, like 600/min; got '10 per minute'",
        "spec.yaml:4:12: jobs[0].model: expected owner/name or owner/name:VERSION"
        " (VERSION is 64 lowercase hex characters), like black-forest-labs/flux-schnell;"
        " got 'flux'",
    ]


def test_an_empty_jobs_list() -> None:
    assert messages("batchrun: 1\njobs: []\n") == [
        "spec.yaml:2:7: jobs: expected a list with at least one item, got an empty list"
    ]


def test_axis_names_are_identifiers_and_not_reserved() -> None:
    text = (
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {}\n"
        "    matrix:\n      repeat: [1]\n      2nd: [1]\n"
    )
    assert messages(text) == [
        "spec.yaml:6:7: jobs[0].matrix.repeat: repeat, job, key, index, ext and output are reserved"
        " variable names; got 'repeat'",
        'spec.yaml:7:7: jobs[0].matrix["2nd"]: expected a variable name: letters, digits and'
        " '_', not starting with a digit; got '2nd'",
    ]


def test_an_axis_that_is_neither_a_list_nor_a_source() -> None:
    text = (
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {}\n"
        "    matrix:\n      seed: 4\n      style: {rnage: [1, 3]}\n      size: {range: [1]}\n"
        "      n: {range: [1, x]}\n      both: {lines: a.txt, csv: b.csv}\n"
    )
    sources = (
        "expected a list of values or one source: {range: [start, stop, step]}, {lines: path},"
        " {csv: path}, {jsonl: path}, {json: path} or {glob: pattern}"
    )
    assert messages(text) == [
        "spec.yaml:10:13: jobs[0].matrix.both: " + sources + ", got {lines: a.txt, csv: b.csv}",
        "spec.yaml:6:13: jobs[0].matrix.seed: " + sources + ", got 4",
        "spec.yaml:7:15: jobs[0].matrix.style.rnage: unknown source 'rnage'; did you mean 'range'?",
        "spec.yaml:8:21: jobs[0].matrix.size.range: expected [start, stop] or"
        " [start, stop, step], got [1]",
        "spec.yaml:9:22: jobs[0].matrix.n.range[1]: expected a number, got 'x'",
    ]


def test_empty_include_and_exclude_entries() -> None:
    text = (
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {}\n    exclude: [{}]\n    include: [3]\n"
    )
    assert messages(text) == [
        "spec.yaml:5:15: jobs[0].exclude[0]: expected at least one key, got an empty mapping",
        "spec.yaml:6:15: jobs[0].include[0]: expected a mapping, got 3",
    ]


def test_a_document_that_is_not_a_mapping() -> None:
    assert messages("- just\n- a list\n") == [
        "spec.yaml:1:1: expected a mapping, got [just, a list]"
    ]


def test_echoed_values_never_show_a_token() -> None:
    text = "batchrun: 1\njobs:\n  - model: r8_abcdefghijklmnopqrstuvwxyz012345\n    input: {}\n"
    (message,) = messages(text)
    assert "r8_" not in message
    assert re.search(r"got \(a value that looks like an API token\)$", message)
