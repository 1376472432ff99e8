"""How values appear in messages: short, flow-style, and never a token."""

from __future__ import annotations

import pytest

from batchrun.spec.describe import did_you_mean, looks_like_token, show, show_row


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("ten", "'ten'"),
        (3, "3"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ([1, "a b"], "[1, a b]"),
        ({"range": [1]}, "{range: [1]}"),
        ("x" * 100, "'" + "x" * 79 + "…'"),
        ("r8_" + "a" * 37, "(a value that looks like an API token)"),
        ("r8_abcd:efgh", "(a value that looks like an API token)"),  # damaged: still not shown
        ("hk-1234 # the rest", "(a value that looks like an API token)"),
        ("r8 robots", "'r8 robots'"),
    ],
)
def test_show(value: object, shown: str) -> None:
    assert show(value) == shown


def test_show_row_reads_like_yaml_and_quotes_what_yaml_would_misread() -> None:
    row = {"fruit": "banana", "seed": 3, "text": "3", "flag": "yes", "odd": "a: b", "row": {"p": 1}}
    assert (
        show_row(row)
        == '{fruit: banana, seed: 3, text: "3", flag: "yes", odd: "a: b", row: {p: 1}}'
    )
    assert show_row({"t": "Bearer " + "z" * 30}) == "{t: ***}"
    assert len(show_row({"long": "x" * 500})) == len("{long: ") + 80 + len("}")
    assert len(show_row({f"k{i}": "x" * 30 for i in range(10)})) == 120


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("r8_" + "A1" * 15, True),
        ("hk-" + "b" * 20, True),
        ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz", True),
        ("r8_short", False),
        ("Bearer of bad news", False),
        ("a prompt about r8 robots", False),
    ],
)
def test_looks_like_token(text: str, token: bool) -> None:
    assert looks_like_token(text) is token


def test_did_you_mean() -> None:
    assert did_you_mean("concurency", ["concurrency", "rate"]) == "concurrency"
    assert did_you_mean("zzz", ["concurrency", "rate"]) is None
