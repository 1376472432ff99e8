"""spec/conforms.py's quick verdict never contradicts jsonschema on the spec's schema."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.spec.conforms import conforms
from batchrun.spec.schema import check_structure, load_schema
from batchrun.spec.yamlpos import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
VALID: dict[str, Any] = {
    "batchrun": 1,
    "name": "sweep",
    "license": "cc-by-4.0",
    "base_url": "https://api.example",
    "token_env": "REPLICATE_API_TOKEN",
    "concurrency": 8,
    "rate": "600/min",
    "requests": "50/s",
    "wait": 60,
    "output": "runs/x",
    "files": "${job}/${key}${ext}",
    "price": {"per_image": 0.003},
    "budget": 2.5,
    "timeout": "1h30m",
    "jobs": [
        {
            "id": "painter",
            "model": "acme/painter",
            "concurrency": 2,
            "timeout": 90,
            "price": {"per_second": 0.001},
            "input": {"prompt": "a ${animal}", "seed": "${seed}"},
            "matrix": {
                "animal": ["fox", "cat"],
                "seed": {"range": [0, 10, 2]},
                "row": {"csv": "rows.csv"},
            },
            "exclude": [{"animal": "fox"}],
            "include": [{"animal": "owl", "extra": 1}],
            "repeat": 2,
            "files": "${key}${ext}",
        },
        {"version": "0" * 64, "input": {}},
        {"deployment": "acme/flux", "input": {}, "matrix": {"p": {"glob": "*.png"}}},
    ],
}
# Values unlike any a field expects, and some just at or past its bounds.
ODD = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.sampled_from([0.0, 1.0, -0.5, 2.5, 60.0, 61.0, math.nan, math.inf, -math.inf]),
    st.sampled_from(
        ["", "x", "600/min", "1.5/s", "90s", "1h30m", "h", "acme/painter", "0" * 64, "key",
         "repeat", "_ok", "9bad", "https://a", "ftp://a", "CC-BY", "a/b:" + "f" * 64]
    ),
    st.lists(st.integers(0, 5), max_size=4),
    st.sampled_from(
        [{}, {"range": [0, 1]}, {"range": [0]}, {"lines": "a"}, {"csv": ""}, {"json": "a", "x": 1},
         {"per_image": -1}, {"per_image": 1}, {"per_gpu": 1}, {"key": 1}, {"ok": [1]}]
    ),
)  # fmt: skip


def _paths(node: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [where]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*where, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*where, index)))
    return found


PATHS = _paths(VALID)[1:]


def _agrees(document: Any) -> Any:
    verdict = conforms(document, load_schema())
    truth = jsonschema.Draft202012Validator(load_schema()).is_valid(document)
    assert verdict in (truth, None), (document, verdict, truth)
    return verdict


def test_a_full_valid_spec_is_valid_without_jsonschema() -> None:
    assert _agrees(VALID) is True


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(PATHS), ODD), min_size=1, max_size=3))
def test_a_spec_with_odd_values_gets_jsonschemas_verdict_or_none(
    changes: list[tuple[tuple[Any, ...], Any]],
) -> None:
    document = copy.deepcopy(VALID)
    for path, value in changes:
        parent: Any = document
        try:
            for step in path[:-1]:
                parent = parent[step]
            parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced what this one reaches into
    _agrees(document)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(PATHS), st.sampled_from(["unknown", 3, None]))
def test_an_extra_key_anywhere_gets_jsonschemas_verdict(path: tuple[Any, ...], name: Any) -> None:
    document = copy.deepcopy(VALID)
    parent: Any = document
    for step in path:
        parent = parent[step]
    if isinstance(parent, dict):
        parent[name] = 1
    _agrees(document)


@pytest.mark.parametrize(
    "path",
    sorted(
        [
            *ROOT.glob("specs/*.yaml"),
            *ROOT.glob("tests/specs/**/*.yaml"),
            *ROOT.glob("docs/**/*.yaml"),
        ]
    ),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_the_specs_in_the_repository_get_jsonschemas_verdict(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        pytest.skip("not YAML")
    _agrees(document)


def test_a_yaml_timestamp_is_left_to_jsonschema() -> None:
    document = copy.deepcopy(VALID)
    document["name"] = yaml.safe_load("2026-12-07")
    assert conforms(document, load_schema()) is None


def test_a_spec_it_passes_gets_no_issue_and_one_it_fails_gets_jsonschemas() -> None:
    assert (
        check_structure(parse_yaml("batchrun: 1\njobs: [{model: a/b, input: {}}]\n", "s.yaml"))
        == []
    )
    issues = check_structure(
        parse_yaml("batchrun: 1\njobs: [{model: a/b, input: {}, wait: 1}]\n", "s.yaml")
    )
    assert [str(issue) for _, issue in issues] == [
        "s.yaml:2:32: jobs[0].wait: unknown field; the fields here are id, model, version, "
        "deployment, concurrency, price, timeout, input, matrix, exclude, include, repeat, files"
    ]
