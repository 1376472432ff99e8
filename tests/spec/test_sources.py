"""Value sources: lists, ranges and files, with problems placed in the value file."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from batchrun.spec.sources import (
    CsvSource,
    GlobSource,
    JsonlSource,
    JsonSource,
    LinesSource,
    ListSource,
    RangeSource,
    ValueFileError,
)


def write(folder: Path, name: str, data: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def problems(source: object) -> list[str]:
    assert hasattr(source, "scan")
    _, found = source.scan()
    return [f"{p.path.name}:{p.line}:{p.col}: {p.message}" for p in found]


def test_a_list_is_its_values() -> None:
    source = ListSource(("a", 1, {"b": 2}))
    assert list(source.values()) == ["a", 1, {"b": 2}]
    assert source.materialize() == ("a", 1, {"b": 2})
    assert source.scan() == (3, [])


@pytest.mark.parametrize(
    ("numbers", "values"),
    [
        ((1, 4), [1, 2, 3]),
        ((0, 10, 4), [0, 4, 8]),
        ((3, 0, -1), [3, 2, 1]),
        ((3, 1), []),
        ((0, 1, 0.25), [0.0, 0.25, 0.5, 0.75]),
        ((0, 0.35, 0.1), [0.0, 0.1, 0.2, 0.3]),
        ((1.5, 0, -0.5), [1.5, 1.0, 0.5]),
    ],
)
def test_ranges_are_like_python_ranges_and_exact_in_decimal(
    numbers: tuple[float, ...], values: list[float]
) -> None:
    source = RangeSource(*numbers)
    assert list(source.values()) == values
    assert [type(v) for v in source.values()] == [type(v) for v in values]
    assert source.scan() == (len(values), [])


def test_a_float_range_is_indexable_without_being_held() -> None:
    values = RangeSource(0, 1_000_000_000, 0.5).materialize()
    assert len(values) == 2_000_000_000
    assert values[3] == 1.5
    assert values[-1] == 999_999_999.5


def test_a_range_cannot_step_by_zero() -> None:
    with pytest.raises(ValueError, match=r"^the step of a range cannot be 0$"):
        RangeSource(1, 5, 0)


def test_lines_are_stripped_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = write(tmp_path, "styles.txt", "\ufeffwatercolor\n\n  pencil sketch  \r\n\t\npixel art")
    source = LinesSource(path, "styles.txt")
    assert list(source.values()) == ["watercolor", "pencil sketch", "pixel art"]
    assert source.scan() == (3, [])


def test_a_bad_byte_is_placed_on_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "styles.txt", b"one\ntw\xffo\nthree\n")
    source = LinesSource(path, "styles.txt")
    assert problems(source) == ["styles.txt:2:3: not valid UTF-8 text"]
    with pytest.raises(ValueFileError, match="not valid UTF-8 text"):
        list(source.values())


def test_csv_rows_are_mappings_keyed_by_the_header(tmp_path: Path) -> None:
    text = 'prompt,seed\n"a fox, in snow",1\n\n"a long\nprompt",2\n'
    source = CsvSource(write(tmp_path, "p.csv", text), "p.csv")
    assert list(source.values()) == [
        {"prompt": "a fox, in snow", "seed": "1"},
        {"prompt": "a long\nprompt", "seed": "2"},
    ]


def test_csv_problems_carry_the_line_where_the_row_starts(tmp_path: Path) -> None:
    text = 'prompt,seed\n"a\nb",1\nonly one\nc,2\nd,4,5\n'
    source = CsvSource(write(tmp_path, "p.csv", text), "p.csv")
    assert problems(source) == [
        "p.csv:4:1: this row has 1 field, but the header has 2",
        "p.csv:6:1: this row has 3 fields, but the header has 2",
    ]
    assert source.scan()[0] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "p.csv:1:1: expected a header row naming the columns, got an empty file"),
        ("a,,b\n", "p.csv:1:1: column 2 of the header row has no name"),
        ("a,b,a\n", "p.csv:1:1: the header row names column 'a' twice"),
        ('a\n"x"y\n', "p.csv:2:1: not valid CSV: ',' expected after '\"'"),
    ],
)
def test_csv_file_problems(tmp_path: Path, text: str, message: str) -> None:
    source = CsvSource(write(tmp_path, "p.csv", text), "p.csv")
    assert problems(source) == [message]


def test_jsonl_values_and_their_problems(tmp_path: Path) -> None:
    text = '{"prompt": "a"}\n\n[1, 2]\n{"prompt": "b",}\n"x"\n{"v": NaN}\n'
    source = JsonlSource(write(tmp_path, "rows.jsonl", text), "rows.jsonl")
    assert problems(source) == [
        "rows.jsonl:4:16: not valid JSON: Expecting property name enclosed in double quotes",
        "rows.jsonl:6:7: NaN is not a finite number; JSON cannot carry it",
    ]
    assert source.scan()[0] == 3
    with pytest.raises(ValueFileError) as caught:
        list(source.values())
    assert (caught.value.line, caught.value.col) == (4, 16)


def test_json_holds_one_array(tmp_path: Path) -> None:
    good = JsonSource(write(tmp_path, "a.json", '[1, {"b": 2}, "c"]'), "a.json")
    assert list(good.values()) == [1, {"b": 2}, "c"]
    assert problems(JsonSource(write(tmp_path, "o.json", '{"a": 1}'), "o.json")) == [
        "o.json:1:1: expected a JSON array of values, got an object"
    ]
    assert problems(JsonSource(write(tmp_path, "b.json", "[1,\n 2,\n ]"), "b.json")) == [
        "b.json:3:2: not valid JSON: Expecting value"
    ]
    assert problems(JsonSource(write(tmp_path, "i.json", "[1, Infinity]"), "i.json")) == [
        "i.json:1:5: Infinity is not a finite number; JSON cannot carry it"
    ]


def test_a_file_that_vanished_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    source = LinesSource(tmp_path / "gone.txt", "gone.txt")
    assert problems(source) == ["gone.txt:1:1: cannot read this file: No such file or directory"]


def test_a_token_in_a_value_file_is_a_problem(tmp_path: Path) -> None:
    text = "fine\nuse r8_abcdefghijklmnopqrstuvwxyz0123 here\n"
    source = LinesSource(write(tmp_path, "t.txt", text), "t.txt")
    assert problems(source) == [
        "t.txt:2:1: looks like an API token; put it in the environment"
        " (REPLICATE_API_TOKEN or the variable named by token_env) instead"
    ]


def test_scan_stops_after_the_limit(tmp_path: Path) -> None:
    text = "".join("{bad\n" for _ in range(30))
    source = JsonlSource(write(tmp_path, "bad.jsonl", text), "bad.jsonl")
    assert len(source.scan(limit=5)[1]) == 5


def test_glob_gives_sorted_relative_paths_of_files_only(tmp_path: Path) -> None:
    for name in ["b.png", "a.png", "sub/c.png", "sub/d.txt"]:
        write(tmp_path / "inputs", name, "x")
    (tmp_path / "inputs" / "folder.png").mkdir()
    assert list(GlobSource(tmp_path, "inputs/*.png").values()) == ["inputs/a.png", "inputs/b.png"]
    assert list(GlobSource(tmp_path, "inputs/**/*.png").values()) == [
        "inputs/a.png",
        "inputs/b.png",
        "inputs/sub/c.png",
    ]
    assert GlobSource(tmp_path, "nothing/*").scan() == (0, [])


def test_file_sources_stream_instead_of_holding(tmp_path: Path) -> None:
    path = write(tmp_path, "n.txt", "".join(f"{i}\n" for i in range(1000)))
    values = LinesSource(path, "n.txt").values()
    assert inspect.isgenerator(values)
    assert next(values) == "0"


def test_a_source_is_its_fields_those_it_inherits_too() -> None:
    """Compared, hashed and shown by every field, as a frozen record: two value files of one
    kind at different paths are two sources, though their class adds no field of its own."""
    kinds = (LinesSource, JsonlSource, JsonSource, CsvSource)
    for kind in kinds:
        one, same = kind(Path("/s/a.txt"), "a.txt"), kind(Path("/s/a.txt"), "a.txt")
        other = kind(Path("/s/b.txt"), "b.txt")
        assert one == same
        assert hash(one) == hash(same)
        assert one != other
        assert len({one, other}) == 2
        assert repr(one) == f"{kind.__name__}(path={Path('/s/a.txt')!r}, written='a.txt')"
    assert LinesSource(Path("/s/a.txt"), "a.txt") != CsvSource(Path("/s/a.txt"), "a.txt")
    assert RangeSource(0, 3) == RangeSource(0, 3, 1) != RangeSource(0, 4)
    assert ListSource((1, 2)) != ListSource((1, 3))
