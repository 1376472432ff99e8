"""YAML text → plain values, plus where every value sits in the file.

The values are built from `yaml.compose` nodes (libyaml's composer when it is installed) rather
than from `yaml.safe_load`, because only the nodes know their line and column. Every key path maps
to the position of its value and, for mapping entries, of its key, so that a later check can say
`spec.yaml:12:7: jobs[0].matrix.seed: ...` about any value it finds wrong.

Beyond YAML's own syntax, these are issues here: duplicate keys, keys that are not text, tags
other than YAML's plain types, NaN and infinity (JSON cannot carry them), and aliases that nest
into themselves or expand into an absurd number of values.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from batchrun.errors import SpecError, SpecIssue

Key = str | int
KeyPath = tuple[Key, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Enough for any real spec; stops `&a [*a, *a, ...]` chains ("billion laughs") early.
MAX_VALUES = 2_000_000
# Levels of lists and mappings. A spec nests about eight (jobs, a job, input, a value, a list
# in it...); every check after this walks values recursively, and Python's recursion stops
# near a thousand frames, a few of them per level.
MAX_SPEC_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
_CONSTRUCTED_TAGS = {_TAG + name for name in ("int", "float", "bool", "null")}
_TEXT_TAGS = {_TAG + name for name in ("str", "timestamp", "binary")}
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def format_path(path: KeyPath) -> str:
    """`("jobs", 0, "matrix", "seed")` → `jobs[0].matrix.seed`, the form every message uses."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}" if out else part)
        else:
            out.append("[" + _quote(part) + "]")
    return "".join(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Span(NamedTuple):
    """Where a node sits: 1-based line and column of its start, and its character range."""

    line: int
    col: int
    start: int
    end: int


class Places(NamedTuple):
    """Where the values of one file sit, kept after parsing for errors found while planning."""

    file: str
    spots: Mapping[KeyPath, tuple[int, int]]

    def issue(self, path: KeyPath, message: str) -> SpecIssue:
        """A SpecIssue about the value at `path`, placed at it or at its nearest ancestor."""
        for end in range(len(path), -1, -1):
            spot = self.spots.get(path[:end])
            if spot is not None:
                return SpecIssue(self.file, spot[0], spot[1], format_path(path), message)
        return SpecIssue(self.file, 1, 1, format_path(path), message)


class YamlDocument:
    """One parsed YAML file: its plain value, and the place of every value and key in it."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.value: Any = None
        self.values: dict[KeyPath, Span] = {}
        self.keys: dict[KeyPath, Span] = {}
        self._line_starts: list[int] | None = None
        self._string_spans: tuple[list[int], list[tuple[int, KeyPath]]] | None = None

    def where(self, path: KeyPath) -> tuple[int, int]:
        """Line and column of the value at `path`, or of its nearest ancestor that exists."""
        for end in range(len(path), -1, -1):
            span = self.values.get(path[:end])
            if span is not None:
                return span.line, span.col
        return 1, 1

    def key_where(self, path: KeyPath) -> tuple[int, int]:
        """Line and column of the key of a mapping entry (the value's place if there is no key)."""
        span = self.keys.get(path)
        return (span.line, span.col) if span is not None else self.where(path)

    def find(self, path: KeyPath, needle: str) -> tuple[int, int]:
        """Where `needle` is written inside the value at `path`; the value's start if it is not."""
        span = self.values.get(path)
        if span is None:
            return self.where(path)
        index = self.text.find(needle, span.start, max(span.end, span.start + len(needle)))
        return self.position(index) if index >= 0 else (span.line, span.col)

    def position(self, index: int) -> tuple[int, int]:
        """1-based line and column of a character index in the text."""
        if self._line_starts is None:
            self._line_starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect.bisect_right(self._line_starts, index)
        return line, index - self._line_starts[line - 1] + 1

    def string_at(self, index: int) -> KeyPath | None:
        """The path of the string value whose text contains character `index`, if any."""
        if self._string_spans is None:
            # Sorted once, then a bisection per lookup: a scan of every value per lookup made
            # a spec full of pasted tokens take minutes (issue 13). Strings are leaves, so their
            # spans do not overlap; an alias's path shares its anchor's span and comes later:
            # the anchor's path (the first) is kept.
            first: dict[int, tuple[int, KeyPath]] = {}
            for path, span in self.values.items():
                fresh = span.end > span.start and span.start not in first
                if fresh and isinstance(self.get(path), str):
                    first[span.start] = (span.end, path)
            starts = sorted(first)
            self._string_spans = starts, [first[start] for start in starts]
        starts, rest = self._string_spans
        i = bisect.bisect_right(starts, index) - 1
        if i >= 0 and index < rest[i][0]:
            return rest[i][1]
        return None

    def get(self, path: KeyPath) -> Any:
        """The value at `path`; KeyError or IndexError if there is none."""
        value = self.value
        for part in path:
            value = value[part]
        return value

    def places(self) -> Places:
        """The positions of every value, without the text and the parser's state."""
        spots = {path: (span.line, span.col) for path, span in self.values.items()}
        return Places(self.file, MappingProxyType(spots))

    def issue(self, path: KeyPath, message: str, *, at_key: bool = False) -> SpecIssue:
        """A SpecIssue about the value at `path` (or its key), placed in this file."""
        line, col = self.key_where(path) if at_key else self.where(path)
        return SpecIssue(self.file, line, col, format_path(path), message)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document; raise SpecError with every issue found in it."""
    doc = YamlDocument(file, text)
    try:
        loader = _Loader(text)
    except UnicodeError as error:
        raise SpecError([SpecIssue(file, 1, 1, "", f"not valid text: {error}")]) from None
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        raise SpecError([_syntax_issue(doc, error)]) from None
    except yaml.reader.ReaderError as error:
        line, col = doc.position(error.position)
        message = f"not valid YAML: unacceptable character #x{error.character:04x}: {error.reason}"
        raise SpecError([SpecIssue(file, line, col, "", message)]) from None
    except yaml.YAMLError as error:
        raise SpecError([SpecIssue(file, 1, 1, "", f"not valid YAML: {error}")]) from None
    except RecursionError:
        raise SpecError([SpecIssue(file, 1, 1, "", "the YAML is nested too deeply")]) from None
    finally:
        loader.dispose()
    if node is None:
        return doc
    builder = _Builder(doc, loader)
    try:
        doc.value = builder.build(node, ())
    except RecursionError:
        builder.issues.append(SpecIssue(file, 1, 1, "", "the YAML is nested too deeply"))
    if builder.issues:
        raise SpecError(builder.issues)
    return doc


def _syntax_issue(doc: YamlDocument, error: yaml.MarkedYAMLError) -> SpecIssue:
    mark = error.problem_mark or error.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = error.problem or error.context or "unreadable"
    message = f"not valid YAML: {problem}"
    if error.context and error.problem and error.context_mark is not None:
        message += f" ({error.context} at line {error.context_mark.line + 1})"
        lines = doc.text.splitlines()
        if "flow" in error.context and "${" in "".join(lines[error.context_mark.line : line]):
            message += "; inside [...] or {...}, put values with ${...} in quotes"
    return SpecIssue(doc.file, line, col, "", message)


class _TooMany(Exception):
    pass


class _Builder:
    def __init__(self, doc: YamlDocument, loader: yaml.SafeLoader) -> None:
        self.doc = doc
        self.loader = loader
        self.issues: list[SpecIssue] = []
        self.count = 0
        self.open: set[int] = set()

    def build(self, node: yaml.Node, path: KeyPath) -> Any:
        try:
            return self._value(node, path)
        except _TooMany:
            self.issues.append(
                self.doc.issue(path, f"the YAML expands to more than {MAX_VALUES:,} values")
            )
            return None

    def _issue(self, node: yaml.Node, path: KeyPath, message: str) -> None:
        mark = node.start_mark
        self.issues.append(
            SpecIssue(self.doc.file, mark.line + 1, mark.column + 1, format_path(path), message)
        )

    def _value(self, node: yaml.Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooMany
        start, end = node.start_mark, node.end_mark
        self.doc.values[path] = Span(start.line + 1, start.column + 1, start.index, end.index)
        if len(path) > MAX_SPEC_DEPTH and not isinstance(node, yaml.ScalarNode):
            self._issue(node, path, f"nested deeper than {MAX_SPEC_DEPTH} levels")
            return None
        if id(node) in self.open:
            self._issue(node, path, "this alias refers to a value that contains it")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                self._check_tag(node, path, _TAG + "seq")
                return [self._value(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
        finally:
            self.open.discard(id(node))
        self._issue(node, path, "unsupported YAML node")
        return None

    def _check_tag(self, node: yaml.Node, path: KeyPath, expected: str) -> None:
        if node.tag != expected:
            self._issue(node, path, f"unsupported YAML tag {node.tag}; use plain YAML values")

    def _scalar(self, node: yaml.ScalarNode, path: KeyPath) -> Any:
        if node.tag in _TEXT_TAGS:
            # Dates stay as written: JSON has no date type, and the model input wants text.
            return node.value
        if node.tag not in _CONSTRUCTED_TAGS:
            self._check_tag(node, path, _TAG + "str")
            return node.value
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, float) and not math.isfinite(value):
            self._issue(node, path, f"{node.value} is not a finite number; JSON cannot carry it")
            return None
        return value

    def _mapping(self, node: yaml.MappingNode, path: KeyPath) -> dict[str, Any]:
        self._check_tag(node, path, _TAG + "map")
        try:
            self.loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as error:
            self.issues.append(_syntax_issue(self.doc, error))
            return {}
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self._issue(key_node, path, "a key must be plain text, not a list or mapping")
                continue
            # Keys are text in JSON; `1:` or `on:` mean the text "1" and "on".
            key: str = key_node.value
            child = (*path, key)
            mark = key_node.start_mark
            if key in out:
                self._issue(
                    key_node, child, f"duplicate key '{key}' (first at line {first_line[key]})"
                )
                continue
            first_line[key] = mark.line + 1
            self.doc.keys[child] = Span(
                mark.line + 1, mark.column + 1, mark.index, key_node.end_mark.index
            )
            out[key] = self._value(value_node, child)
        return out


def walk_strings(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, str]]:
    """Every string in a plain value, with its path (mapping keys are not included)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from walk_strings(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from walk_strings(item, (*path, i))
