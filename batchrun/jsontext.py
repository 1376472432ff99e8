"""JSON text from the C encoder `json.dumps` ends in, built once, for text made a million times
(an export's rows, a CSV's nested cells, a key's canonical JSON).

`json.dumps` (and `JSONEncoder.encode`) builds that encoder anew on every call, and the Python
layers around it cost as much as the encoding of a small value. `encoder(...)` builds it once
and returns what `json.dumps(value, ensure_ascii=False, ...)` would, text for text; where the C
encoder is missing (an interpreter without `_json`) it returns `JSONEncoder.encode` itself.
There is no cycle check: the values are trees (read from JSON, or a spec's YAML, whose loader
refuses an alias that holds itself).
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any


def encoder(
    *,
    separators: tuple[str, str] = (", ", ": "),
    sort_keys: bool = False,
    allow_nan: bool = True,
    default: Callable[[Any], Any] | None = None,
) -> Callable[[Any], str]:
    """`json.dumps(value, ensure_ascii=False, check_circular=False, ...)` with these options,
    as a function of the value."""
    item_separator, key_separator = separators
    python = json.JSONEncoder(
        ensure_ascii=False,
        check_circular=False,
        allow_nan=allow_nan,
        sort_keys=sort_keys,
        separators=separators,
        default=default,
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    text = getattr(json.encoder, "c_encode_basestring", None)
    if make is None or text is None:
        return python.encode
    parts = make(
        None,  # no cycle check (see the module's docstring)
        python.default,
        text,
        None,  # no indent
        key_separator,
        item_separator,
        sort_keys,
        False,  # skipkeys
        allow_nan,
    )

    def encode(value: Any) -> str:
        kind = value.__class__
        if kind is dict or kind is list:
            return "".join(parts(value, 0))
        if kind is str:
            return text(value)  # type: ignore[no-any-return]
        if kind is int:
            return int.__repr__(value)
        return python.encode(value)

    return encode
