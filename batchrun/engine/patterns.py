"""A schema's `pattern` matched without backtracking: time linear in the text, whatever the pattern.

    compiled = compile_pattern(r"^[a-z]+(-[a-z]+)*$")   # None: cannot be matched safely
    compiled.search("flux-schnell")                    # True, as re.search would say

A model's published schema is not trusted (docs/SECURITY.md): `^(\\w+\\s?)*$` against a long
prompt keeps Python's backtracking `re` busy for longer than the universe has left. Here a
pattern is parsed by Python's own parser (so it means what `re` would make of it) and run as a
Thompson automaton: every position of the text is visited once, with at most one thread per
state. What an automaton cannot do (back-references, look-arounds, atomic groups, possessive
repeats, flags such as `(?i)`) is refused, and the pre-flight skips that pattern with a note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any

# States one pattern may compile to: `x{1000}` is a thousand states, and a nest of counted
# repeats multiplies; Cog patterns (a slug, a hex colour) need a few dozen.
MAX_PATTERN_STATES = 5_000
# Characters of a pattern: a schema's pattern is a line, not a program.
MAX_PATTERN_LENGTH = 1_000

Predicate = Callable[[str], bool]


class Unsafe(Exception):
    """The pattern uses what an automaton cannot match (or is too large): its reason."""


@dataclass(frozen=True)
class _Char:
    test: Predicate
    next: int


@dataclass(frozen=True)
class _Split:
    first: int
    second: int


@dataclass(frozen=True)
class _At:
    where: Any
    next: int


_MATCH = "match"
_State = _Char | _Split | _At | str | None  # None: a jump placeholder still to be patched


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


_CATEGORIES: dict[Any, Predicate] = {
    sre.CATEGORY_DIGIT: str.isdecimal,
    sre.CATEGORY_NOT_DIGIT: lambda ch: not ch.isdecimal(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda ch: not ch.isspace(),
    sre.CATEGORY_WORD: _is_word,
    sre.CATEGORY_NOT_WORD: lambda ch: not _is_word(ch),
}


@dataclass(frozen=True)
class Pattern:
    """A compiled pattern: `search` answers as `re.search(pattern, text) is not None` would."""

    source: str
    states: tuple[_State, ...]
    _start: int

    def search(self, text: str) -> bool:
        """Whether the pattern matches anywhere in `text`."""
        current: list[int] = []
        seen: set[int] = set()
        for at in range(len(text) + 1):
            # Unanchored: a new thread starts at every position (`^` keeps only the first).
            self._add(self._start, at, text, current, seen)
            if any(self.states[i] == _MATCH for i in current):
                return True
            if at == len(text):
                return False
            ch = text[at]
            following: list[int] = []
            seen = set()
            for i in current:
                state = self.states[i]
                if isinstance(state, _Char) and state.test(ch):
                    self._add(state.next, at + 1, text, following, seen)
            current = following
        return False

    def _add(self, index: int, at: int, text: str, into: list[int], seen: set[int]) -> None:
        stack = [index]
        while stack:
            i = stack.pop()
            if i in seen:
                continue
            seen.add(i)
            state = self.states[i]
            if isinstance(state, _Split):
                stack.extend((state.second, state.first))
            elif isinstance(state, _At):
                if _holds(state.where, text, at):
                    stack.append(state.next)
            else:
                into.append(i)


def _holds(where: Any, text: str, at: int) -> bool:
    if where in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING):
        return at == 0
    if where == sre.AT_END_STRING:
        return at == len(text)
    if where == sre.AT_END:  # `$` without MULTILINE: the end, or before a last line break
        return at == len(text) or (at == len(text) - 1 and text[at] == "\n")
    before = at > 0 and _is_word(text[at - 1])
    after = at < len(text) and _is_word(text[at])
    if where == sre.AT_BOUNDARY:
        return before != after
    if where == sre.AT_NON_BOUNDARY:
        return before == after
    raise Unsafe(f"the anchor {where}")  # refused at compile time; never reached


_ANCHORS = {
    sre.AT_BEGINNING,
    sre.AT_BEGINNING_STRING,
    sre.AT_END,
    sre.AT_END_STRING,
    sre.AT_BOUNDARY,
    sre.AT_NON_BOUNDARY,
}


class _Builder:
    def __init__(self) -> None:
        self.states: list[_State] = []

    def add(self, state: _State) -> int:
        if len(self.states) >= MAX_PATTERN_STATES:
            raise Unsafe(f"it needs more than {MAX_PATTERN_STATES:,} states")
        self.states.append(state)
        return len(self.states) - 1

    def sequence(self, items: Any, then: int) -> int:
        """States matching `items` then going on at `then`; returns the first state."""
        start = then
        for op, av in reversed(list(items)):
            start = self.item(op, av, start)
        return start

    def item(self, op: Any, av: Any, then: int) -> int:
        if op in (sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN):
            return self.add(_Char(_predicate(op, av), then))
        if op == sre.AT:
            if av not in _ANCHORS:
                raise Unsafe(f"the anchor {av}")
            return self.add(_At(av, then))
        if op == sre.SUBPATTERN:
            _group, add_flags, del_flags, items = av
            if add_flags or del_flags:
                raise Unsafe("flags inside the pattern")
            return self.sequence(items, then)
        if op == sre.BRANCH:
            branches = [self.sequence(items, then) for items in av[1]]
            start = branches[-1]
            for first in reversed(branches[:-1]):
                start = self.add(_Split(first, start))
            return start
        if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            # Greedy or lazy decides which match re reports, never whether there is one.
            low, high, items = av
            return self.repeat(items, low, high, then)
        raise Unsafe(f"{str(op).lower().replace('_', ' ')} (not possible without backtracking)")

    def repeat(self, items: Any, low: int, high: Any, then: int) -> int:
        start = then
        if high == sre.MAXREPEAT:
            loop = self.add(None)  # patched below: either one more round, or on
            body = self.sequence(items, loop)
            self.states[loop] = _Split(body, then)
            start = loop
        else:
            for _ in range(high - low):
                start = self.add(_Split(self.sequence(items, start), then))
        for _ in range(low):
            start = self.sequence(items, start)
        return start


def _between(low: int, high: int) -> Predicate:
    return lambda ch: low <= ord(ch) <= high


def _predicate(op: Any, av: Any) -> Predicate:
    if op == sre.LITERAL:
        return lambda ch: ord(ch) == av
    if op == sre.NOT_LITERAL:
        return lambda ch: ord(ch) != av
    if op == sre.ANY:
        return lambda ch: ch != "\n"
    tests: list[Predicate] = []
    negate = False
    for kind, value in av:
        if kind == sre.NEGATE:
            negate = True
        elif kind == sre.LITERAL:
            tests.append(_between(value, value))
        elif kind == sre.RANGE:
            tests.append(_between(*value))
        elif kind == sre.CATEGORY and value in _CATEGORIES:
            tests.append(_CATEGORIES[value])
        else:
            raise Unsafe(f"the class item {kind}")
    return lambda ch: any(test(ch) for test in tests) != negate


def compile_pattern(source: str) -> Pattern:
    """The pattern as an automaton; raises Unsafe when it cannot be matched in linear time."""
    if len(source) > MAX_PATTERN_LENGTH:
        raise Unsafe(f"it is longer than {MAX_PATTERN_LENGTH:,} characters")
    try:
        parsed = _parser.parse(source)
    except (_parser.error, RecursionError, OverflowError) as error:
        raise Unsafe(f"Python cannot parse it ({error})") from None
    if parsed.state.flags & ~sre.SRE_FLAG_UNICODE:
        raise Unsafe("flags such as (?i)")
    builder = _Builder()
    match = builder.add(_MATCH)
    start = builder.sequence(parsed, match)
    return Pattern(source, tuple(builder.states), start)
