"""The spec's structure: JSON Schema validation, with errors turned into placed sentences.

The schema itself (`batchrun/data/batchrun.schema.json`, linked from `schemas/`) is what editors
read through `# yaml-language-server: $schema=...`; here jsonschema's errors are walked through the
YAML positions and rewritten as something a person can act on:

    unknown field          → at the key itself: "unknown field; did you mean 'concurrency'?"
    missing required field → at the mapping:    "missing required field 'input'"
    wrong type             → "expected a whole number, got 'ten'"
    oneOf / anyOf          → the errors of the one branch the value was evidently meant for

`patternErrorMessage` and `errorMessage` in the schema (the keywords VS Code's YAML and JSON
servers read too) supply the sentences for patterns and for the alternatives of `oneOf`.
"""

from __future__ import annotations

import json
import pkgutil
from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from batchrun.errors import SpecIssue
from batchrun.spec.conforms import conforms
from batchrun.spec.describe import did_you_mean, join_names, show
from batchrun.spec.yamlpos import KeyPath, YamlDocument

if TYPE_CHECKING:
    # No stubs ship for jsonschema and none are in the test extras; the calls used here are few.
    import jsonschema  # type: ignore[import-untyped]
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]

SCHEMA_RESOURCE = ("batchrun", "data/batchrun.schema.json")

_TYPE_NAMES = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


@cache
def load_schema() -> dict[str, Any]:
    """The canonical JSON Schema of format version 1, as shipped inside the package."""
    package, name = SCHEMA_RESOURCE
    # pkgutil, not importlib.resources: the same file through the package's loader (a zip
    # too), without the readers and zipfile that were a twentieth of an offline `validate`.
    data = pkgutil.get_data(package, name)
    if data is None:  # a loader that cannot read files; none of Python's own
        raise RuntimeError(f"cannot read {name} of the {package} package")
    schema: dict[str, Any] = json.loads(data.decode("utf-8"))
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    # Imported here: it is most of an offline `validate`'s time, and a valid spec never needs it.
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema())


def check_structure(doc: YamlDocument) -> list[tuple[KeyPath, SpecIssue]]:
    """Every schema error in a document, each with the path it makes untrustworthy."""
    if conforms(doc.value, load_schema()) is True:
        return []  # certainly valid (spec/conforms.py): jsonschema would find nothing
    found: list[tuple[KeyPath, SpecIssue]] = []
    for error in _validator().iter_errors(doc.value):
        found.extend(_translate(error, doc))
    return found


def _translate(error: ValidationError, doc: YamlDocument) -> Iterator[tuple[KeyPath, SpecIssue]]:
    path: KeyPath = tuple(error.absolute_path)
    if "propertyNames" in error.relative_schema_path:
        key_path = (*path, str(error.instance))
        yield key_path, doc.issue(key_path, _sentence(error), at_key=True)
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        yield from _unknown_fields(error, path, doc)
    elif error.validator == "required" and isinstance(error.instance, dict):
        for name in error.validator_value:
            if name not in error.instance:
                yield (*path, name), doc.issue(path, f"missing required field '{name}'")
    elif error.validator in ("oneOf", "anyOf"):
        yield from _alternatives(error, path, doc)
    else:
        yield path, doc.issue(path, _sentence(error))


def _unknown_fields(
    error: ValidationError, path: KeyPath, doc: YamlDocument
) -> Iterator[tuple[KeyPath, SpecIssue]]:
    allowed = list(error.schema.get("properties", {}))
    for name in error.instance:
        if name in allowed:
            continue
        guess = did_you_mean(name, allowed)
        hint = f"did you mean '{guess}'?" if guess else f"the fields here are {join_names(allowed)}"
        yield (*path, name), doc.issue((*path, name), f"unknown field; {hint}", at_key=True)


def _alternatives(
    error: ValidationError, path: KeyPath, doc: YamlDocument
) -> Iterator[tuple[KeyPath, SpecIssue]]:
    """Report the branch the value was meant for, or one sentence naming the forms allowed."""
    branches: dict[int, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    instance = error.instance

    def fails_at_root(errors: list[ValidationError], keyword: str) -> bool:
        return any(e.validator == keyword and not e.relative_path for e in errors)

    meant = [i for i, errors in branches.items() if not fails_at_root(errors, "type")]
    if isinstance(instance, dict):
        meant = [i for i in meant if not fails_at_root(branches[i], "required")]
    if len(meant) == 1:
        for sub in branches[meant[0]]:
            yield from _translate(sub, doc)
        return
    options = error.schema[error.validator]
    if isinstance(instance, dict) and not meant:
        known = [name for option in options for name in option.get("properties", {})]
        unknown = [name for name in instance if name not in known]
        if unknown:
            for name in unknown:
                guess = did_you_mean(name, known)
                hint = f"did you mean '{guess}'?" if guess else error.schema.get("errorMessage", "")
                message = f"unknown source '{name}'" + (f"; {hint}" if hint else "")
                yield (*path, name), doc.issue((*path, name), message, at_key=True)
            return
    message = error.schema.get("errorMessage") or "does not match any of the allowed forms"
    yield path, doc.issue(path, f"{message}, got {_got(instance)}")


def _sentence(error: ValidationError) -> str:
    """One validation error as a sentence (without its place)."""
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    keyword, expected, instance = error.validator, error.validator_value, error.instance
    got = _got(instance)
    if keyword == "not" and isinstance(expected, Mapping) and "errorMessage" in expected:
        return f"{expected['errorMessage']}; got {got}"
    if keyword == "pattern" and "patternErrorMessage" in schema:
        return f"{schema['patternErrorMessage']}; got {got}"
    if "errorMessage" in schema:
        return f"{schema['errorMessage']}, got {got}"
    if keyword == "type":
        names = [expected] if isinstance(expected, str) else list(expected)
        sentence = f"expected {' or '.join(_TYPE_NAMES.get(n, n) for n in names)}, got {got}"
        if names == ["string"] and isinstance(instance, bool | int | float):
            # `version: 0123` or `name: yes` are numbers and booleans to YAML.
            sentence += " (YAML reads it as a number or true/false; put it in quotes)"
        return sentence
    if keyword == "const":
        return f"expected {json.dumps(expected)}, got {got}"
    if keyword == "enum":
        return f"expected one of {join_names(json.dumps(v) for v in expected)}, got {got}"
    if keyword in ("minimum", "maximum") and "minimum" in schema and "maximum" in schema:
        return f"expected a number from {schema['minimum']} to {schema['maximum']}, got {got}"
    if keyword == "minimum":
        return f"expected a number of at least {expected}, got {got}"
    if keyword == "maximum":
        return f"expected a number of at most {expected}, got {got}"
    if keyword == "minItems":
        return "expected a list with at least one item, got an empty list"
    if keyword == "maxItems":
        return f"expected at most {expected} items, got {len(instance)}"
    if keyword == "minLength":
        return "expected some text, got ''"
    if keyword == "minProperties":
        return "expected at least one key, got an empty mapping"
    return str(error.message)


def _got(instance: Any) -> str:
    if isinstance(instance, dict) and len(show(instance)) > 40:
        return "a mapping"
    if isinstance(instance, list) and len(show(instance)) > 40:
        return "a list"
    return show(instance)
