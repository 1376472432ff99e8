"""Templated structures: a whole input compiled once, rendered per row.

`compile_value` walks a structure (mappings, lists, scalars), compiles every string as a
template, and returns one render function. Constant parts are built once and shared by every
rendered row, so a rendered value must be treated as read-only. Given an `encode` function, it
also renders the value's canonical JSON from pre-encoded constant parts, so a plan of a million
rows encodes only what each row changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from batchrun.spec.template import (
    KeyPath,
    MissingVariable,
    Ref,
    RenderError,
    Template,
    TemplateError,
    Vars,
    as_text,
)

Renderer = Callable[[Vars], Any]
Wrap = Callable[[Any, KeyPath], Any]
Encoded = Callable[[Vars], tuple[Any, str]]


class Compiled(NamedTuple):
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


class _Node(NamedTuple):
    """A compiled part: a constant `value` (and its `text`), or functions that build it.

    A `leaf` (a templated string) is encoded by its parent calling `encode(render(vars))`
    directly: one function call less per value per row than going through `encoded`.
    """

    value: Any = None
    text: str = ""
    render: Renderer | None = None
    encoded: Encoded | None = None
    leaf: bool = False


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

        return _Node(render=render, encoded=encoded, leaf=True)

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
        leaves = [
            (i, key, heads[i], item)
            for i, key in enumerate(keys)
            if nodes[key].leaf and (item := nodes[key].render) is not None
        ]
        nested = [
            (i, key, heads[i], item)
            for i, key in enumerate(keys)
            if not nodes[key].leaf and (item := nodes[key].encoded) is not None
        ]

        def encoded(vars: Vars) -> tuple[Any, str]:
            out, pieces = constants.copy(), layout.copy()
            for i, key, head, render_item in leaves:
                value = out[key] = render_item(vars)
                pieces[i] = head + encode(value)
            for i, key, head, encoded_item in nested:
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
