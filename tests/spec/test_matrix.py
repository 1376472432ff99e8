"""The matrix: product order, and GitHub Actions' include and exclude rules to the letter.

The three worked examples are those of GitHub's "Running variations of jobs in a workflow"
and "Workflow syntax" pages, with the results those pages list.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from batchrun.spec.matrix import Matrix, same
from batchrun.spec.sources import ListSource, ValueSource


def axes(**values: Sequence[Any]) -> tuple[tuple[str, ValueSource], ...]:
    return tuple((name, ListSource(tuple(items))) for name, items in values.items())


def rows(matrix: Matrix) -> list[dict[str, Any]]:
    return [row for row, _ in matrix.rows()]


def test_the_product_runs_in_declared_order_first_axis_slowest() -> None:
    matrix = Matrix(axes(version=[10, 12, 14], os=["ubuntu-latest", "windows-latest"]))
    assert rows(matrix) == [
        {"version": 10, "os": "ubuntu-latest"},
        {"version": 10, "os": "windows-latest"},
        {"version": 12, "os": "ubuntu-latest"},
        {"version": 12, "os": "windows-latest"},
        {"version": 14, "os": "ubuntu-latest"},
        {"version": 14, "os": "windows-latest"},
    ]


def test_github_include_example_fruit_animal_color_shape() -> None:
    matrix = Matrix(
        axes(fruit=["apple", "pear"], animal=["cat", "dog"]),
        include=(
            {"color": "green"},
            {"color": "pink", "animal": "cat"},
            {"fruit": "apple", "shape": "circle"},
            {"fruit": "banana"},
            {"fruit": "banana", "animal": "cat"},
        ),
    )
    assert list(matrix.rows()) == [
        ({"fruit": "apple", "animal": "cat", "color": "pink", "shape": "circle"}, None),
        ({"fruit": "apple", "animal": "dog", "color": "green", "shape": "circle"}, None),
        ({"fruit": "pear", "animal": "cat", "color": "pink"}, None),
        ({"fruit": "pear", "animal": "dog", "color": "green"}, None),
        ({"fruit": "banana"}, 3),
        ({"fruit": "banana", "animal": "cat"}, 4),
    ]


def test_github_exclude_example_os_version_environment() -> None:
    matrix = Matrix(
        axes(
            os=["macos-latest", "windows-latest"],
            version=[12, 14, 16],
            environment=["staging", "production"],
        ),
        exclude=(
            {"os": "macos-latest", "version": 12, "environment": "production"},
            {"os": "windows-latest", "version": 16},
        ),
    )
    found = rows(matrix)
    assert len(found) == 9
    assert {"os": "macos-latest", "version": 12, "environment": "production"} not in found
    assert not [row for row in found if row["os"] == "windows-latest" and row["version"] == 16]
    assert found[0] == {"os": "macos-latest", "version": 12, "environment": "staging"}


def test_github_include_example_npm() -> None:
    matrix = Matrix(
        axes(os=["windows-latest", "ubuntu-latest"], node=[14, 16]),
        include=({"os": "windows-latest", "node": 16, "npm": 6},),
    )
    assert rows(matrix) == [
        {"os": "windows-latest", "node": 14},
        {"os": "windows-latest", "node": 16, "npm": 6},
        {"os": "ubuntu-latest", "node": 14},
        {"os": "ubuntu-latest", "node": 16},
    ]


def test_github_include_example_adding_a_configuration() -> None:
    matrix = Matrix(
        axes(os=["macos-latest", "windows-latest", "ubuntu-latest"], version=[12, 14, 16]),
        include=({"os": "windows-latest", "version": 17},),
    )
    found = list(matrix.rows())
    assert len(found) == 10
    assert found[-1] == ({"os": "windows-latest", "version": 17}, 0)


def test_include_only_matrix_makes_one_row_per_entry() -> None:
    matrix = Matrix(
        include=(
            {"site": "production", "datacenter": "site-a"},
            {"site": "staging", "datacenter": "site-b"},
        )
    )
    assert list(matrix.rows()) == [
        ({"site": "production", "datacenter": "site-a"}, 0),
        ({"site": "staging", "datacenter": "site-b"}, 1),
    ]


def test_no_matrix_at_all_is_one_empty_row() -> None:
    assert list(Matrix().rows()) == [({}, None)]


def test_include_merges_only_into_combinations_that_remain_after_exclude() -> None:
    matrix = Matrix(
        axes(a=[1, 2], b=["x", "y"]),
        exclude=({"a": 1, "b": "x"},),
        include=({"a": 1, "b": "x", "note": "back"}, {"b": "y", "note": "y"}),
    )
    assert list(matrix.rows()) == [
        ({"a": 1, "b": "y", "note": "y"}, None),
        ({"a": 2, "b": "x"}, None),
        ({"a": 2, "b": "y", "note": "y"}, None),
        ({"a": 1, "b": "x", "note": "back"}, 0),
    ]


def test_an_exclude_on_one_axis_removes_the_whole_subtree() -> None:
    matrix = Matrix(axes(a=[1, 2, 3], b=["x", "y"], c=[True, False]), exclude=({"b": "y"},))
    assert rows(matrix) == [{"a": a, "b": "x", "c": c} for a in (1, 2, 3) for c in (True, False)]


def test_values_are_compared_strictly() -> None:
    assert same(1, 1)
    assert not same(1, True)
    assert not same(1, 1.0)
    assert not same(1, "1")
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same({"a": [1]}, {"a": [True]})
    matrix = Matrix(axes(seed=[1, True, "1", 1.0]), exclude=({"seed": 1},))
    assert rows(matrix) == [{"seed": True}, {"seed": "1"}, {"seed": 1.0}]


def test_mapping_values_can_be_excluded_and_matched() -> None:
    matrix = Matrix(
        axes(row=[{"p": "a"}, {"p": "b"}]),
        exclude=({"row": {"p": "a"}},),
        include=({"row": {"p": "b"}, "extra": 1},),
    )
    assert rows(matrix) == [{"row": {"p": "b"}, "extra": 1}]


class CountingSource(ValueSource):
    """A source that records how far it has been read, like a big file would be."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.read = 0
        self.passes = 0

    def values(self) -> Iterator[Any]:
        self.passes += 1
        for i in range(self.count):
            self.read += 1
            yield i


def test_the_first_axis_streams_and_the_others_are_read_once() -> None:
    outer, inner = CountingSource(1_000_000), CountingSource(3)
    matrix = Matrix((("a", outer), ("b", inner)), exclude=({"a": 0, "b": 1},))
    found = matrix.rows()
    first = [next(found)[0] for _ in range(4)]
    assert first == [{"a": 0, "b": 0}, {"a": 0, "b": 2}, {"a": 1, "b": 0}, {"a": 1, "b": 1}]
    assert outer.read == 2
    assert (inner.passes, inner.read) == (1, 3)
