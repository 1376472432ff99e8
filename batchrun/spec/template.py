"""`${var}` templates: parsed once, rendered per row.

    "${subject}, ${style}"   text: each value is put in as text (non-text as compact JSON)
    "${seed}"                a string that is only one reference keeps the value's type
    "${row.prompt}"          fields walk into mappings (and list positions: ${row.tags.0})
    "$${HOME}"               `$${` writes a literal `${`

Whole structures (an input of mappings, lists and scalars) are compiled by
`batchrun.spec.structure.compile_value`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from batchrun import jsontext

KeyPath = tuple[str | int, ...]
Vars = Mapping[str, Any]

_ROOT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateError(ValueError):
    """A template that does not parse; `offset` is where in its text the problem starts."""

    def __init__(self, message: str, offset: int, where: KeyPath = ()) -> None:
        self.message, self.offset, self.where = message, offset, where
        super().__init__(message)


class RenderError(Exception):
    """A template that cannot be filled from a row; `where` is its path inside the value."""

    def __init__(self, message: str, where: KeyPath = ()) -> None:
        self.message, self.where = message, where
        super().__init__(message)


class MissingVariable(RenderError):
    """The row has no variable of this name."""

    def __init__(self, ref: Ref, where: KeyPath = ()) -> None:
        self.ref = ref
        super().__init__(f"this row has no variable '{ref.name}'", where)


class MissingField(RenderError):
    """A `${a.b}` reference whose value has no field `b`."""

    def __init__(self, ref: Ref, field: str, value: Any, where: KeyPath = ()) -> None:
        self.ref, self.field = ref, field
        if isinstance(value, dict):
            # Field names come from value files: quote any that would break the message's line.
            names = [str(n) if str(n).isprintable() else json.dumps(str(n)) for n in value]
            fields = ", ".join(names) or "none"
            message = f"{ref.text}: no field '{field}' here (the fields are {fields})"
        else:
            message = f"{ref.text}: '{field}' needs a mapping, but the value is {_kind(value)}"
        super().__init__(message, where)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return "text" if isinstance(value, str) else json.dumps(value)


class Ref(NamedTuple):
    """One `${name.field...}` reference."""

    name: str
    fields: tuple[str, ...]
    text: str

    def lookup(self, vars: Vars) -> Any:
        """The referenced value; MissingVariable or MissingField if the row lacks it."""
        try:
            value = vars[self.name]
        except KeyError:
            raise MissingVariable(self) from None
        for field in self.fields:
            if isinstance(value, dict) and field in value:
                value = value[field]
            elif isinstance(value, list) and field.isdigit() and int(field) < len(value):
                value = value[int(field)]
            else:
                raise MissingField(self, field, value)
        return value


_SCALAR_TEXT: dict[type, Callable[[Any], str]] = {
    str: str,
    int: int.__repr__,
    float: float.__repr__,  # what json.dumps writes for a finite float
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}
_compact = jsontext.encoder(separators=(",", ":"))


def as_text(value: Any) -> str:
    """How a value reads inside text: strings as they are, everything else as compact JSON."""
    convert = _SCALAR_TEXT.get(value.__class__)
    return convert(value) if convert is not None else _compact(value)


Part = str | Ref


class Template(NamedTuple):
    """A parsed template string."""

    text: str
    parts: tuple[Part, ...]

    @classmethod
    def compile(cls, text: str) -> Template:
        """Parse `text`; TemplateError if a `${` is not a well-formed reference."""
        return cls(text, tuple(_parse(text)))

    @property
    def refs(self) -> tuple[Ref, ...]:
        """The references, in order."""
        return tuple(part for part in self.parts if isinstance(part, Ref))

    @property
    def variables(self) -> frozenset[str]:
        """The root names this template uses."""
        return frozenset(ref.name for ref in self.refs)

    @property
    def whole(self) -> Ref | None:
        """The reference, if the template is exactly one reference (and so keeps its type)."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Ref):
            return self.parts[0]
        return None

    @property
    def is_constant(self) -> bool:
        """Whether the template has no references."""
        return not any(isinstance(part, Ref) for part in self.parts)

    def render(self, vars: Vars) -> Any:
        """Fill the template from `vars`; a whole-value reference keeps the value's type."""
        whole = self.whole
        if whole is not None:
            return whole.lookup(vars)
        return "".join(
            part if isinstance(part, str) else as_text(part.lookup(vars)) for part in self.parts
        )


def _parse(text: str) -> list[Part]:
    parts: list[Part] = []
    literal: list[str] = []
    i = 0
    while True:
        j = text.find("$", i)
        if j < 0:
            literal.append(text[i:])
            break
        if text.startswith("$${", j):
            literal.append(text[i:j] + "${")
            i = j + 3
        elif text.startswith("${", j):
            literal.append(text[i:j])
            end = text.find("}", j + 2)
            if end < 0:
                raise TemplateError("'${' is not closed by '}' (write $${ for a literal ${)", j)
            if literal and "".join(literal):
                parts.append("".join(literal))
            literal = []
            parts.append(_ref(text[j + 2 : end], text[j : end + 1], j))
            i = end + 1
        else:
            literal.append(text[i : j + 1])
            i = j + 1
    if "".join(literal):
        parts.append("".join(literal))
    return parts


def _ref(inner: str, written: str, offset: int) -> Ref:
    name, *fields = inner.strip().split(".")
    if not _ROOT.fullmatch(name) or not all(fields) or "{" in inner or "$" in inner:
        raise TemplateError(
            f"{written} is not a variable reference; expected ${{name}} or ${{name.field}}"
            " (write $${ for a literal ${)",
            offset,
        )
    return Ref(name, tuple(fields), written)
