"""Where a matrix axis gets its values: a YAML list, a range, or a file.

    [a, b, c]                 the values as written
    {range: [start, stop]}    numbers, like Python's range (a step may follow stop)
    {lines: path}             one value per non-empty line of a text file
    {csv: path}               one mapping per row of a CSV file with a header row
    {jsonl: path}             one JSON value per non-empty line
    {json: path}              the items of one JSON array
    {glob: pattern}           the paths of the matching files, sorted

Paths are relative to the spec's folder. A source can be read many times: `values()` streams it
(so the slowest axis of a huge dataset never sits in memory), `materialize()` holds it (the
faster axes are walked once per value of the slower ones). Problems inside a value file are
`ValueFileError`s carrying that file's own line and column.
"""

from __future__ import annotations

import glob as globbing
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, overload

from batchrun import safefs
from batchrun.spec.describe import TOKEN_MESSAGE, looks_like_token

# Bytes of a {json:} value file, parsed whole: a few million values. Larger sweeps stream as
# {jsonl:} or {csv:}, which are read a line at a time and need no limit.
MAX_JSON_FILE_BYTES = 256 << 20


class ValueFileError(Exception):
    """A value file that cannot be read, or a line in it that does not parse."""

    def __init__(self, path: Path, line: int, col: int, message: str) -> None:
        self.path, self.line, self.col, self.message = path, line, col, message
        super().__init__(f"{path}:{line}:{col}: {message}")


class ValueSource(ABC):
    """The values of one matrix axis, readable as often as needed.

    Each source is a frozen record of its `__slots__`: compared, hashed and shown by them, as a
    frozen dataclass would be. Not a dataclass (see `batchrun.spec`: they cost `validate` its
    start-up time), and not a NamedTuple, which cannot extend this class.
    """

    __slots__: tuple[str, ...] = ()

    def _names(self) -> tuple[str, ...]:
        """Every field of the source: the slots of its class and of the classes it extends
        (a `LinesSource` is a `FileSource`'s path and name, though it adds none)."""
        mro = reversed(type(self).__mro__)
        return tuple(name for klass in mro for name in vars(klass).get("__slots__", ()))

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._names())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValueSource) or type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), self._fields()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names())
        return f"{type(self).__name__}({shown})"

    @abstractmethod
    def values(self) -> Iterator[Any]:
        """Stream the values in order; ValueFileError at the first bad one."""

    def materialize(self) -> Sequence[Any]:
        """All values at once, for an axis that is walked more than once."""
        return list(self.values())

    def scan(self, limit: int = 10) -> tuple[int, list[ValueFileError]]:
        """Count the values and collect up to `limit` problems, holding none of the values."""
        return sum(1 for _ in self.values()), []

    def files(self) -> tuple[Path, ...]:
        """The files this source reads (none for a list or a range)."""
        return ()


class ListSource(ValueSource):
    """Values written in the spec itself."""

    __slots__ = ("items",)
    items: Final[tuple[Any, ...]]

    def __init__(self, items: tuple[Any, ...]) -> None:
        self.items = items

    def values(self) -> Iterator[Any]:
        return iter(self.items)

    def materialize(self) -> Sequence[Any]:
        return self.items


class RangeSource(ValueSource):
    """Numbers from start up to stop (not included), by step."""

    __slots__ = ("start", "step", "stop")
    start: Final[int | float]
    stop: Final[int | float]
    step: Final[int | float]

    def __init__(self, start: int | float, stop: int | float, step: int | float = 1) -> None:
        if step == 0:
            raise ValueError("the step of a range cannot be 0")
        self.start, self.stop, self.step = start, stop, step

    def values(self) -> Iterator[Any]:
        return iter(self.materialize())

    def materialize(self) -> Sequence[Any]:
        if all(type(n) is int for n in (self.start, self.stop, self.step)):
            return range(int(self.start), int(self.stop), int(self.step))
        return DecimalRange(self.start, self.stop, self.step)

    def scan(self, limit: int = 10) -> tuple[int, list[ValueFileError]]:
        return len(self.materialize()), []


class DecimalRange(Sequence[float]):
    """A float range computed in decimal, so [0, 1, 0.1] gives 0.3 and not 0.30000000000000004."""

    def __init__(self, start: float, stop: float, step: float) -> None:
        from decimal import Decimal  # here: a spec without a float range never needs it

        self._start, self._step = Decimal(repr(start)), Decimal(repr(step))
        span = (Decimal(repr(stop)) - self._start) / self._step
        self._length = max(0, int(span.to_integral_value(rounding="ROUND_CEILING")))

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> float: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...
    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if not -self._length <= index < self._length:
            raise IndexError(index)
        return float(self._start + (index % self._length) * self._step)


class FileSource(ValueSource):
    """A source read from a file relative to the spec's folder."""

    __slots__ = ("path", "written")
    path: Final[Path]  # absolute
    written: Final[str]  # as the spec wrote it

    def __init__(self, path: Path, written: str) -> None:
        self.path, self.written = path, written

    def files(self) -> tuple[Path, ...]:
        return (self.path,)

    def scan(self, limit: int = 10) -> tuple[int, list[ValueFileError]]:
        count, problems = 0, []
        for item in self._items(keep_going=True):
            if isinstance(item, ValueFileError):
                problems.append(item)
            elif _has_token(item[1]):
                problems.append(self.error(item[0], 1, TOKEN_MESSAGE))
            else:
                count += 1
            if len(problems) >= limit:
                break
        return count, problems

    def values(self) -> Iterator[Any]:
        for item in self._items(keep_going=False):
            if isinstance(item, ValueFileError):
                raise item
            yield item[1]

    def numbered(self) -> Iterator[tuple[int, Any]]:
        """(line, value) for every good value, in file order: to place a value found wrong later."""
        for item in self._items(keep_going=True):
            if not isinstance(item, ValueFileError):
                yield item

    @abstractmethod
    def _items(self, keep_going: bool) -> Iterator[tuple[int, Any] | ValueFileError]:
        """(line, value) pairs and ValueFileErrors in file order; after an error, go on if asked."""

    def _lines(self) -> Iterator[tuple[int, str | ValueFileError]]:
        """The file's lines, decoded one by one so a bad byte is placed on its own line."""
        try:
            # A regular file only: a FIFO or /dev/zero would hang or never end (links were
            # checked against the spec's folder when the source was made).
            handle = safefs.open_regular(self.path, None, follow=True)
        except OSError as error:
            yield 0, ValueFileError(self.path, 1, 1, f"cannot read this file: {error.strerror}")
            return
        with handle:
            for number, raw in enumerate(handle, 1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    yield number, self.error(number, error.start + 1, "not valid UTF-8 text")
                    continue
                yield number, text.removeprefix("\ufeff") if number == 1 else text

    def error(self, line: int, col: int, message: str) -> ValueFileError:
        """A problem at a line and column of this file."""
        return ValueFileError(self.path, line, col, message)


class LinesSource(FileSource):
    """One value per non-empty line, without surrounding whitespace."""

    __slots__ = ()

    def _items(self, keep_going: bool) -> Iterator[tuple[int, Any] | ValueFileError]:
        for number, line in self._lines():
            if isinstance(line, ValueFileError):
                yield line
                if not keep_going:
                    return
            elif line.strip():
                yield number, line.strip()


class JsonlSource(FileSource):
    """One JSON value per non-empty line."""

    __slots__ = ()

    def _items(self, keep_going: bool) -> Iterator[tuple[int, Any] | ValueFileError]:
        for number, line in self._lines():
            if isinstance(line, ValueFileError):
                yield line
            elif line.strip():
                value = _parse_json(line.rstrip("\r\n"))
                if not isinstance(value, _JsonProblem):
                    yield number, value
                    continue
                yield self.error(number, value.col, value.message)
            else:
                continue
            if not keep_going:
                return


class JsonSource(FileSource):
    """The items of a file holding one JSON array."""

    __slots__ = ()

    def _items(self, keep_going: bool) -> Iterator[tuple[int, Any] | ValueFileError]:
        try:
            data = safefs.read_regular(self.path, MAX_JSON_FILE_BYTES, follow=True)
        except OSError as error:
            yield self.error(1, 1, f"cannot read this file: {error.strerror}")
            return
        try:
            text = data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            line = data.count(b"\n", 0, error.start) + 1
            yield self.error(
                line,
                error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1,
                "not valid UTF-8 text",
            )
            return
        value = _parse_json(text)
        if isinstance(value, _JsonProblem):
            yield self.error(value.line, value.col, value.message)
        elif not isinstance(value, list):
            kind = "an object" if isinstance(value, dict) else "a single value"
            yield self.error(1, 1, f"expected a JSON array of values, got {kind}")
        else:
            # The file is one value, so items have no lines of their own; 1 places them.
            yield from ((1, item) for item in value)


class CsvSource(FileSource):
    """One mapping per row, keyed by the header row; every value is text."""

    __slots__ = ()

    def _items(self, keep_going: bool) -> Iterator[tuple[int, Any] | ValueFileError]:
        import csv  # here: a spec without a CSV file never needs it

        failed: list[ValueFileError] = []

        def text_lines() -> Iterator[str]:
            for _, line in self._lines():
                if isinstance(line, ValueFileError):
                    failed.append(line)
                    return
                yield line

        reader = csv.reader(text_lines(), strict=True)
        header: list[str] | None = None
        line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                yield self.error(reader.line_num, 1, f"not valid CSV: {error}")
                return
            start, line = line, reader.line_num + 1
            if not row:
                continue
            if header is None:
                header = row
                problem = _header_problem(header)
                if problem:
                    yield self.error(start, 1, problem)
                    return
            elif len(row) != len(header):
                fields = f"{len(row)} field" + ("" if len(row) == 1 else "s")
                yield self.error(
                    start, 1, f"this row has {fields}, but the header has {len(header)}"
                )
                if not keep_going:
                    return
            else:
                yield start, dict(zip(header, row, strict=True))
        if failed:
            yield failed[0]
        elif header is None:
            yield self.error(1, 1, "expected a header row naming the columns, got an empty file")


def _header_problem(header: list[str]) -> str | None:
    for number, name in enumerate(header, 1):
        if not name.strip():
            return f"column {number} of the header row has no name"
        if header.index(name) != number - 1:
            return f"the header row names column '{name}' twice"
    return None


class GlobSource(ValueSource):
    """The files matching a pattern, as sorted paths relative to the spec's folder."""

    __slots__ = ("base", "pattern")
    base: Final[Path]
    pattern: Final[str]

    def __init__(self, base: Path, pattern: str) -> None:
        self.base, self.pattern = base, pattern

    def values(self) -> Iterator[Any]:
        return iter(self.materialize())

    def materialize(self) -> Sequence[Any]:
        found = globbing.glob(self.pattern, root_dir=self.base, recursive=True)
        paths = [p.replace(os.sep, "/") for p in found if (self.base / p).is_file()]
        return sorted(paths)


class _JsonProblem(NamedTuple):
    # A NamedTuple, not a frozen dataclass: a third of the cost to create at start-up, and no
    # more is asked of it than its three fields.
    line: int
    col: int
    message: str


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _parse_json(text: str) -> Any:
    """The JSON value of `text`, or a _JsonProblem placed in it."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as problem:
        return _JsonProblem(problem.lineno, problem.colno, f"not valid JSON: {problem.msg}")
    except _NotFinite as problem:
        name = str(problem)
        index = max(text.find(name), 0)
        line = text.count("\n", 0, index) + 1
        col = index - (text.rfind("\n", 0, index) + 1) + 1
        return _JsonProblem(line, col, f"{name} is not a finite number; JSON cannot carry it")
    except RecursionError:
        return _JsonProblem(1, 1, "not valid JSON: nested too deeply")


def _has_token(value: Any) -> bool:
    """Whether a value holds something that looks like an API token (a dataset is as public
    as the spec that names it)."""
    if isinstance(value, str):
        return ("r8_" in value or "hk-" in value or "Bearer" in value) and looks_like_token(value)
    if isinstance(value, dict):
        return any(_has_token(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_token(item) for item in value)
    return False
