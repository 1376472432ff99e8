"""`${var}` templates: parsed once, rendered per row.

    "${subject}, ${style}"   text: each value is put in as text (non-text as compact JSON)
    "${seed}"                a string that is only one reference keeps the value's type
    "${row.prompt}"          fields walk into mappings (and list positions: ${row.tags.0})
    "$${HOME}"               `$${` writes a literal `${`

`compile_value` compiles a whole structure (an input: mappings, lists, scalars) into one render
function. Constant parts are built once and shared by every rendered row, so a rendered value
must be treated as read-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

KeyPath = tuple[str | int, ...]
Vars = Mapping[str, Any]
Renderer = Callable[[Vars], Any]
Wrap = Callable[[Any, KeyPath], Any]

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
            fields = ", ".join(value) or "none"
            message = f"{ref.text}: no field '{field}' here (the fields are {fields})"
        else:
            message = f"{ref.text}: '{field}' needs a mapping, but the value is {_kind(value)}"
        super().__init__(message, where)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return "text" if isinstance(value, str) else json.dumps(value)


@dataclass(frozen=True, slots=True)
class Ref:
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
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def as_text(value: Any) -> str:
    """How a value reads inside text: strings as they are, everything else as compact JSON."""
    convert = _SCALAR_TEXT.get(value.__class__)
    return convert(value) if convert is not None else _compact(value)


Part = str | Ref


@dataclass(frozen=True, slots=True)
class Template:
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


Encoded = Callable[[Vars], tuple[Any, str]]


@dataclass(frozen=True, slots=True)
class Compiled:
    """A structure compiled for rendering: `render(vars)` builds one row's value.

    With an `encode` function given to `compile_value`, `render_encoded(vars)` also returns the
    value's encoding, built from the pre-encoded constant parts: only what a row changes is
    encoded per row.
    """

    render: Renderer
    constant: bool
    templates: tuple[tuple[KeyPath, Template], ...]
    render_encoded: Encoded | None = None

    @property
    def variables(self) -> frozenset[str]:
        """Every root name used anywhere in the structure."""
        return frozenset(name for _, t in self.templates for name in t.variables)


def compile_value(
    value: Any,
    *,
    wraps: Mapping[str, Wrap] | None = None,
    encode: Callable[[Any], str] | None = None,
    path: KeyPath = (),
) -> Compiled:
    """Compile every string in `value` as a template; TemplateError names the first bad one.

    `wraps` turns special one-key mappings into objects: `{file: "${img}"}` with
    `wraps={"file": make}` renders the string, then returns `make(rendered, path)`.
    `encode` must be JSON with sorted keys and no spaces (json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)); it is what `render_encoded` reproduces.
    """
    templates: list[tuple[KeyPath, Template]] = []
    node = _Compiler(wraps or {}, encode, templates).node(value, path)
    found = tuple(templates)
    if node.render is None:
        constant, text = node.value, node.text
        return Compiled(lambda vars: constant, True, found, lambda vars: (constant, text))
    return Compiled(node.render, False, found, node.encoded)


@dataclass(frozen=True, slots=True)
class _Node:
    """A compiled part: a constant `value` (and its `text`), or functions that build it."""

    value: Any = None
    text: str = ""
    render: Renderer | None = None
    encoded: Encoded | None = None


class _Compiler:
    def __init__(
        self,
        wraps: Mapping[str, Wrap],
        encode: Callable[[Any], str] | None,
        found: list[tuple[KeyPath, Template]],
    ) -> None:
        self.wraps, self.encode, self.found = wraps, encode, found

    def constant(self, value: Any) -> _Node:
        return _Node(value, self.encode(value) if self.encode else "")

    def node(self, value: Any, path: KeyPath) -> _Node:
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, dict):
            if len(value) == 1 and next(iter(value)) in self.wraps:
                ((name, inner),) = value.items()
                if isinstance(inner, str):
                    return self.wrapped(name, inner, (*path, name))
            return self.mapping(value, path)
        if isinstance(value, list):
            return self.sequence(value, path)
        return self.constant(value)

    def string(self, text: str, path: KeyPath) -> _Node:
        try:
            template = Template.compile(text)
        except TemplateError as error:
            error.where = path
            raise
        self.found.append((path, template))
        if template.is_constant:
            return self.constant(template.render({}))  # `$${` is `${` once rendered
        return self.dynamic(_string_renderer(template, path))

    def dynamic(self, render: Renderer) -> _Node:
        encode = self.encode
        if encode is None:
            return _Node(render=render)

        def encoded(vars: Vars) -> tuple[Any, str]:
            value = render(vars)
            return value, encode(value)

        return _Node(render=render, encoded=encoded)

    def wrapped(self, name: str, text: str, path: KeyPath) -> _Node:
        inner = self.string(text, path)
        make = self.wraps[name]
        if inner.render is None:
            return self.constant(make(inner.value, path))
        render_inner = inner.render
        return self.dynamic(lambda vars: make(render_inner(vars), path))

    def mapping(self, value: dict[str, Any], path: KeyPath) -> _Node:
        nodes = {key: self.node(item, (*path, key)) for key, item in value.items()}
        constants = {key: node.value for key, node in nodes.items()}
        dynamic = [(key, node.render) for key, node in nodes.items() if node.render is not None]
        if not dynamic:
            return self.constant(constants)

        def render(vars: Vars) -> Any:
            # A copy of the written mapping keeps its key order; templated values change.
            out = constants.copy()
            for key, render_item in dynamic:
                out[key] = render_item(vars)
            return out

        if self.encode is None:
            return _Node(render=render)
        encode = self.encode
        # Canonical JSON sorts the keys: lay out "key":value pieces once, fill the slots per row.
        keys = sorted(nodes)
        heads = [encode(key) + ":" for key in keys]
        layout = [head + nodes[key].text for head, key in zip(heads, keys, strict=True)]
        slots = [
            (i, key, heads[i], item)
            for i, key in enumerate(keys)
            if (item := nodes[key].encoded) is not None
        ]

        def encoded(vars: Vars) -> tuple[Any, str]:
            out, pieces = constants.copy(), layout.copy()
            for i, key, head, encoded_item in slots:
                out[key], text = encoded_item(vars)
                pieces[i] = head + text
            return out, "{" + ",".join(pieces) + "}"

        return _Node(render=render, encoded=encoded)

    def sequence(self, value: list[Any], path: KeyPath) -> _Node:
        nodes = [self.node(item, (*path, i)) for i, item in enumerate(value)]
        if all(node.render is None for node in nodes):
            return self.constant([node.value for node in nodes])
        parts = [(node.render, node.value) for node in nodes]

        def render(vars: Vars) -> Any:
            return [
                value if render_item is None else render_item(vars) for render_item, value in parts
            ]

        if self.encode is None:
            return _Node(render=render)
        texts = [node.text for node in nodes]
        slots = [(i, item) for i, node in enumerate(nodes) if (item := node.encoded) is not None]
        constants = [node.value for node in nodes]

        def encoded(vars: Vars) -> tuple[Any, str]:
            out, pieces = constants.copy(), texts.copy()
            for i, encoded_item in slots:
                out[i], pieces[i] = encoded_item(vars)
            return out, "[" + ",".join(pieces) + "]"

        return _Node(render=render, encoded=encoded)


def _string_renderer(template: Template, path: KeyPath) -> Renderer:
    whole = template.whole
    if whole is not None and not whole.fields:
        name = whole.name

        def render_whole(vars: Vars) -> Any:
            try:
                return vars[name]
            except KeyError:
                raise MissingVariable(whole, path) from None

        return render_whole

    parts = template.parts
    if all(isinstance(part, str) or not part.fields for part in parts):
        # The common case, `"${subject}, ${style}"`: plain names, no fields to walk. The
        # literal pieces are laid out once; each render fills in the slots.
        layout = [part if isinstance(part, str) else "" for part in parts]
        slots = [(i, part) for i, part in enumerate(parts) if isinstance(part, Ref)]

        def render_names(vars: Vars) -> Any:
            out = layout.copy()
            for i, ref in slots:
                try:
                    value = vars[ref.name]
                except KeyError:
                    raise MissingVariable(ref, path) from None
                out[i] = value if value.__class__ is str else as_text(value)
            return "".join(out)

        return render_names

    def render(vars: Vars) -> Any:
        try:
            return template.render(vars)
        except RenderError as error:
            error.where = path
            raise

    return render
