"""Whether a document certainly satisfies the spec's schema, decided without jsonschema.

Importing jsonschema (with `referencing`, `attrs` and its format machinery) is most of what an
offline `validate` of a small spec costs. A spec that is valid needs none of its messages, so
`conforms` walks the schema's few keywords itself and answers True only where jsonschema surely
says the same; False and None (a keyword, a value type or a number it does not judge exactly)
hand the document to jsonschema, which alone words the errors. Its answers are tested against
jsonschema's (tests/spec/test_conforms.py).

    conforms(value, schema)  →  True: valid · False: invalid · None: ask jsonschema
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sized
from functools import cache
from typing import Any

# Keywords that only annotate or hold definitions (the two messages are VS Code's, read by
# spec/schema.py's sentences).
_ANNOTATIONS = frozenset(
    ("$schema", "$id", "$defs", "title", "description", "patternErrorMessage", "errorMessage")
)
# The value types YAML gives and jsonschema judges as JSON; any other (a YAML timestamp) is None.
_PLAIN = (dict, list, str, int, float, bool, type(None))

Verdict = bool | None
_Check = Callable[[Any, Any, Mapping[str, Any]], Verdict]


def conforms(value: Any, schema: Mapping[str, Any]) -> Verdict:
    """True when `value` certainly satisfies `schema` (the spec's JSON Schema), False when it
    certainly does not, None when only jsonschema can tell."""
    return _check(value, schema, schema)


def _check(value: Any, schema: Any, root: Mapping[str, Any]) -> Verdict:
    if not isinstance(schema, Mapping) or not isinstance(value, _PLAIN):
        return None
    verdicts: list[Verdict] = []
    for keyword, expected in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "additionalProperties":  # the one keyword that reads a sibling
            found = _additional(value, expected, schema.get("properties", {}), root)
        elif (rule := _RULES.get(keyword)) is not None:
            found = rule(value, expected, root)
        else:
            return None  # a keyword this module does not judge
        verdicts.append(found)
    return _all(verdicts)


def _all(verdicts: Any) -> Verdict:
    """False if any is False, else None if any is None, else True (an empty list is True)."""
    unsure = False
    for verdict in verdicts:
        if verdict is False:
            return False
        unsure = unsure or verdict is None
    return None if unsure else True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _type(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    if expected == "integer":
        if isinstance(value, float):
            return value.is_integer()  # 1.0 is an integer to jsonschema
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return _is_number(value)
    kinds: dict[str, type | tuple[type, ...]] = {
        "string": str, "object": dict, "array": list, "boolean": bool, "null": type(None)
    }  # fmt: skip
    kind = kinds.get(expected) if isinstance(expected, str) else None
    return None if kind is None else isinstance(value, kind)


def _const(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    # jsonschema's equality tells 1 from True and takes 1 for 1.0: only the plain case is judged.
    if type(value) is type(expected) and isinstance(value, str | int):
        return bool(value == expected)
    return None


def _enum(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    if not isinstance(expected, list) or not all(isinstance(item, str) for item in expected):
        return None
    return isinstance(value, str) and value in expected


def _pattern(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    if not isinstance(value, str):
        return True
    return _compiled(expected).search(value) is not None


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _bound(fails: Callable[[Any, Any], bool]) -> _Check:
    # jsonschema's own comparisons, so that NaN passes or fails as it does there.
    def check(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
        if not _is_number(expected):
            return None
        return not (_is_number(value) and fails(value, expected))

    return check


def _size(of: type[Sized], fails: Callable[[int, int], bool]) -> _Check:
    def check(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
        if not isinstance(expected, int):
            return None
        return not (isinstance(value, of) and fails(len(value), expected))

    return check


def _required(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    return not isinstance(value, dict) or all(name in value for name in expected)


def _properties(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    if not isinstance(value, dict):
        return True
    return _all(_check(value[name], sub, root) for name, sub in expected.items() if name in value)


def _additional(
    value: Any, expected: Any, properties: Mapping[str, Any], root: Mapping[str, Any]
) -> Verdict:
    if not isinstance(value, dict):
        return True
    extra = [name for name in value if name not in properties]
    if expected is False:
        return not extra
    return _all(_check(value[name], expected, root) for name in extra)


def _property_names(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    return not isinstance(value, dict) or _all(_check(name, expected, root) for name in value)


def _items(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    return not isinstance(value, list) or _all(_check(item, expected, root) for item in value)


def _not(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    verdict = _check(value, expected, root)
    return None if verdict is None else not verdict


def _one_of(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    verdicts = [_check(value, branch, root) for branch in expected]
    if None in verdicts:
        return None
    return verdicts.count(True) == 1


def _ref(value: Any, expected: Any, root: Mapping[str, Any]) -> Verdict:
    prefix = "#/$defs/"
    if not isinstance(expected, str) or not expected.startswith(prefix):
        return None
    target = root.get("$defs", {}).get(expected[len(prefix) :])
    return None if target is None else _check(value, target, root)


_RULES: dict[str, _Check] = {
    "type": _type,
    "const": _const,
    "enum": _enum,
    "pattern": _pattern,
    "minimum": _bound(lambda value, bound: value < bound),
    "maximum": _bound(lambda value, bound: value > bound),
    "exclusiveMinimum": _bound(lambda value, bound: value <= bound),
    "minLength": _size(str, lambda size, bound: size < bound),
    "maxLength": _size(str, lambda size, bound: size > bound),
    "minItems": _size(list, lambda size, bound: size < bound),
    "maxItems": _size(list, lambda size, bound: size > bound),
    "minProperties": _size(dict, lambda size, bound: size < bound),
    "required": _required,
    "properties": _properties,
    "propertyNames": _property_names,
    "items": _items,
    "not": _not,
    "oneOf": _one_of,
    "$ref": _ref,
}
