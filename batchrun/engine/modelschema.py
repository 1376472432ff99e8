"""A model's published input schema as data: measured, kept to itself, matched in bounded time.

    problem = refusal(components)          # why the schema cannot be checked safely, or None
    fields = FieldChecker(components)
    fields.check("aspect_ratio", "16:9")   # the first ValidationError, or None
    fields.skipped                         # patterns not checked, and why

`FieldChecker` checks a value twice over at most: a field whose schema uses only the plain
keywords Cog writes (a type, bounds, an enum of strings, one `allOf` `$ref` to such an enum)
gets a predicate compiled once that passes what certainly fits; anything it does not pass, and
every other field, goes to jsonschema, whose errors are the only ones reported.

The API is not trusted (docs/SECURITY.md), and a schema is part of its answer. So a schema is
never a program: nothing it names is fetched (a `$ref` leaves the document only to be refused,
whatever `referencing` would otherwise retrieve), its size, depth, references and enums are
bounded before jsonschema sees it, its references may neither loop nor chain on for long, and a
`pattern` runs on `batchrun.engine.patterns`' automaton rather than Python's backtracking `re`.
A schema over a bound is not checked at all (the pre-flight says so in a note; the creates will
tell); a pattern the automaton cannot run is skipped on its own, also with a note.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import referencing

from batchrun.engine.patterns import Pattern, Unsafe, compile_pattern

# Values (mappings, lists, scalars) in a schema's components: Cog's schema of a large model is a
# few hundred; a hundred times that leaves room and still walks in milliseconds. Past it the
# schema is not checked: 400,000 declared inputs is a schema made to be slow, not a model.
MAX_SCHEMA_NODES = 50_000
# Nesting of the components: Cog's go five deep (components, schemas, Input, properties, field).
MAX_SCHEMA_DEPTH = 32
# `$ref`s in the components: Cog writes one per enum input.
MAX_SCHEMA_REFS = 500
# References followed one after another (a refers to b, which refers to c...): Cog's go one hop,
# a field to its enum. A long chain is what turns jsonschema's recursion into a RecursionError.
MAX_REF_CHAIN = 16
# Values of one enum: a scheduler or aspect-ratio list is a dozen; a million-value enum printed
# 19 MB per refused value.
MAX_ENUM_VALUES = 1_000
# Work (characters of a value × states of a pattern) one pattern check may do: about a second
# of pure Python at worst (20,000 characters against `^(\w+\s?)*$` took 2 s on a busy
# machine at 160,000); a longer value is not checked against that pattern, with a note.
MAX_PATTERN_WORK = 100_000

# Keywords that re-root or redirect references (`$id` changes what `#/...` means).
_REFUSED_KEYWORDS = ("$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef")


class SchemaRefused(Exception):
    """The schema cannot be checked safely; the message says why, as a note's ending."""


def refusal(components: Any) -> str | None:
    """Why this schema's components cannot be checked safely, or None if they can."""
    try:
        _measure(components)
    except SchemaRefused as refused:
        return str(refused)
    return None


def _measure(components: Any) -> None:
    nodes = 0
    refs: list[tuple[tuple[str, ...], str]] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(components, ())]
    while stack:
        node, where = stack.pop()
        nodes += 1
        if nodes > MAX_SCHEMA_NODES:
            raise SchemaRefused(f"it holds more than {MAX_SCHEMA_NODES:,} values")
        if len(where) > MAX_SCHEMA_DEPTH:
            raise SchemaRefused(f"it nests more than {MAX_SCHEMA_DEPTH} levels deep")
        if isinstance(node, Mapping):
            _keywords(node, where, refs)
            stack.extend((value, (*where, str(key))) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*where, str(i))) for i, value in enumerate(node))
    _chains(components, refs)


def _keywords(node: Mapping[str, Any], where: tuple[str, ...], refs: list[Any]) -> None:
    for keyword in _REFUSED_KEYWORDS:
        if isinstance(node.get(keyword), str):
            raise SchemaRefused(f"it uses {keyword}, which batchrun does not follow")
    if isinstance(node.get("patternProperties"), Mapping):
        raise SchemaRefused("it uses patternProperties, which only a backtracking matcher runs")
    enum = node.get("enum")
    if isinstance(enum, list) and len(enum) > MAX_ENUM_VALUES:
        raise SchemaRefused(f"an enum in it has more than {MAX_ENUM_VALUES:,} values")
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not (ref == "#" or ref.startswith("#/")):
            raise SchemaRefused(
                f"it refers to {ref[:200]!r} outside itself, which batchrun never fetches"
            )
        refs.append((where, ref))
        if len(refs) > MAX_SCHEMA_REFS:
            raise SchemaRefused(f"it holds more than {MAX_SCHEMA_REFS} $refs")


def _pointer(ref: str) -> tuple[str, ...]:
    """`#/components/schemas/a~1b` as the keys it walks: ("components", "schemas", "a/b")."""
    path = urllib.parse.unquote(ref[1:])
    if not path:
        return ()
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/"))


def _chains(components: Any, refs: list[tuple[tuple[str, ...], str]]) -> None:
    """Refuse references that loop or chain on: a target refers on to every reference inside it."""
    # The validators' root is {"components": ...}: pointers start with "components".
    root = {"components": components}
    targets = {ref: _pointer(ref) for _, ref in refs}
    for ref, path in targets.items():
        if _lookup(root, path) is _MISSING:
            raise SchemaRefused(f"it refers to {ref[:200]!r}, which it does not hold")
    onward: dict[str, set[str]] = {
        ref: {other for where, other in refs if ("components", *where)[: len(path)] == path}
        for ref, path in targets.items()
    }
    longest: dict[str, int] = {}
    for start in onward:
        _walk(start, onward, longest, ())


def _walk(
    ref: str, onward: dict[str, set[str]], longest: dict[str, int], path: tuple[str, ...]
) -> int:
    if ref in path:
        raise SchemaRefused(f"its $refs loop ({' → '.join((*path, ref))[:300]})")
    if ref in longest:
        return longest[ref]
    if len(path) >= MAX_REF_CHAIN:
        raise SchemaRefused(f"its $refs chain on for more than {MAX_REF_CHAIN} steps")
    depth = 1 + max((_walk(nxt, onward, longest, (*path, ref)) for nxt in onward[ref]), default=0)
    if depth + len(path) > MAX_REF_CHAIN:
        raise SchemaRefused(f"its $refs chain on for more than {MAX_REF_CHAIN} steps")
    longest[ref] = depth
    return depth


_MISSING = object()


def _lookup(root: Any, path: tuple[str, ...]) -> Any:
    node = root
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _no_retrieval(uri: str) -> referencing.Resource[Any]:
    # A schema is data: nothing it names is fetched, from the network or from a file.
    import referencing.exceptions

    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


# Keywords a compiled predicate ignores: annotations (and `format`, which Draft 2020-12 only
# annotates unless a format checker is given, and FieldChecker gives none).
_ANNOTATIONS = frozenset(
    ("title", "description", "default", "examples", "x-order", "format", "readOnly",
     "writeOnly", "deprecated", "nullable", "x-cog-array-type", "x-cog-array-display")
)  # fmt: skip
# The keywords a compiled predicate checks; a schema with any other goes to jsonschema.
_CHECKED = frozenset(("type", "minimum", "maximum", "enum", "allOf"))
_NUMBER = (int, float)

Predicate = Callable[[Any], bool]


def _fits(root: Any, schema: Any, depth: int = 0) -> Predicate | None:
    """A predicate that is True only for values `schema` certainly accepts (a False says
    nothing: jsonschema decides), or None where the schema uses more than it checks."""
    if not isinstance(schema, Mapping) or depth > MAX_REF_CHAIN:
        return None
    if not set(schema) <= _ANNOTATIONS | _CHECKED | {"$ref"}:
        return None
    tests: list[Predicate] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        target = (
            _lookup(root, _pointer(ref))
            if isinstance(ref, str) and ref.startswith("#/")
            else _MISSING
        )
        inner = None if target is _MISSING else _fits(root, target, depth + 1)
        if inner is None:
            return None
        tests.append(inner)
    if "allOf" in schema:
        parts = schema["allOf"]
        if not isinstance(parts, list) or not parts:
            return None
        for part in parts:
            inner = _fits(root, part, depth + 1)
            if inner is None:
                return None
            tests.append(inner)
    if "type" in schema:
        kind = _TYPES.get(schema["type"]) if isinstance(schema["type"], str) else None
        if kind is None:
            return None
        tests.append(kind)
    for keyword, holds in (("minimum", _at_least), ("maximum", _at_most)):
        if keyword in schema:
            bound = schema[keyword]
            if not isinstance(bound, _NUMBER) or isinstance(bound, bool):
                return None
            tests.append(holds(bound))
    if "enum" in schema:
        allowed = schema["enum"]
        if not isinstance(allowed, list) or not all(isinstance(item, str) for item in allowed):
            return None
        names = frozenset(allowed)
        tests.append(lambda value: type(value) is str and value in names)
    return lambda value: all(test(value) for test in tests)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _at_least(bound: float) -> Predicate:
    return lambda value: not _is_number(value) or value >= bound


def _at_most(bound: float) -> Predicate:
    return lambda value: not _is_number(value) or value <= bound


# Types passed only where jsonschema surely agrees (a float is left to it, as are NaN's bounds).
_TYPES: dict[str, Predicate] = {
    "string": lambda value: type(value) is str,
    "integer": lambda value: type(value) is int,
    "number": lambda value: type(value) is int,
    "boolean": lambda value: type(value) is bool,
    "null": lambda value: value is None,
}


class FieldChecker:
    """Each input field against its property schema, with jsonschema, refusing retrieval and
    running patterns on the automaton. Call only for components that `refusal` passed."""

    def __init__(self, components: Any) -> None:
        # Imported here: a run with nothing to create (no pre-flight) never needs them.
        import jsonschema  # type: ignore[import-untyped]
        import referencing

        self._root = {"components": components}
        self._registry: referencing.Registry[Any] = referencing.Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]
        self._validators: dict[str, Any] = {}
        self._fits: dict[str, Predicate | None] = {}
        self._patterns: dict[str, Pattern | None] = {}
        # Patterns not checked (the pattern → why), for the pre-flight's notes.
        self.skipped: dict[str, str] = {}
        self._class = jsonschema.validators.extend(
            jsonschema.Draft202012Validator, {"pattern": self._pattern}
        )
        self._error = jsonschema.ValidationError

    def fits(self, name: str, value: Any) -> bool:
        """Whether the field `name` certainly accepts `value`, known without jsonschema (its
        type, bounds or enum); False says nothing."""
        if name not in self._fits:
            properties = _lookup(self._root, ("components", "schemas", "Input", "properties"))
            found = properties.get(name) if isinstance(properties, Mapping) else None
            self._fits[name] = _fits(self._root, found)
        fits = self._fits[name]
        return fits is not None and fits(value)

    def check(self, name: str, value: Any) -> Any:
        """The first of the ValidationErrors of `value` for the field `name` (by path), or None."""
        if self.fits(name, value):
            return None
        validator = self._validators.get(name)
        if validator is None:
            pointer = name.replace("~", "~0").replace("/", "~1")
            pointer = urllib.parse.quote(pointer, safe="~")
            subschema = {**self._root, "$ref": f"#/components/schemas/Input/properties/{pointer}"}
            validator = self._class(subschema, registry=self._registry)
            self._validators[name] = validator
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
        return errors[0] if errors else None

    def _pattern(self, validator: Any, pattern: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if not (validator.is_type(instance, "string") and isinstance(pattern, str)):
            return
        compiled = self._compiled(pattern)
        if compiled is None:
            return
        if len(instance) * len(compiled.states) > MAX_PATTERN_WORK:
            self.skipped.setdefault(
                pattern, f"a value of {len(instance):,} characters is too long for it"
            )
            return
        if not compiled.search(instance):
            yield self._error(f"{instance!r} does not match {pattern!r}")

    def _compiled(self, pattern: str) -> Pattern | None:
        if pattern not in self._patterns:
            try:
                self._patterns[pattern] = compile_pattern(pattern)
            except Unsafe as unsafe:
                self._patterns[pattern] = None
                self.skipped[pattern] = str(unsafe)
        return self._patterns[pattern]
