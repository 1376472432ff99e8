"""`jsontext.encoder` writes what `json.dumps` writes, text for text, with each set of options
batchrun uses, over values of any shape a record or a spec holds."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from batchrun import jsontext

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        | st.dictionaries(st.integers(-3, 3), inner, max_size=3)
    ),  # keys JSON writes as text
    max_leaves=12,
)
OPTIONS: list[dict[str, Any]] = [
    {},  # an export's JSON line
    {"separators": (",", ":")},  # a CSV cell
    {"separators": (",", ":"), "sort_keys": True},  # canonical JSON (a table's digests)
]


@pytest.mark.parametrize("options", OPTIONS)
@given(value=values)
@example(value={"b": 1, "a": [1.5, -0.0, math.inf, None, True, "é\u2028\x00"]})
@example(value=1.0)
@example(value=True)
def test_the_text_is_json_dumps_text(options: dict[str, Any], value: Any) -> None:
    encode = jsontext.encoder(**options)
    try:
        expected = json.dumps(value, ensure_ascii=False, **options)
    except TypeError:  # keys of two types to sort: refused alike
        with pytest.raises(TypeError):
            encode(value)
        return
    assert encode(value) == expected


@given(value=values)
def test_without_nan_a_nan_is_refused_as_json_dumps_refuses_it(value: Any) -> None:
    encode = jsontext.encoder(separators=(",", ":"), allow_nan=False)
    try:
        expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        with pytest.raises(ValueError, match="JSON compliant"):
            encode(value)
        return
    assert encode(value) == expected


def test_a_value_json_cannot_write_goes_to_default() -> None:
    encode = jsontext.encoder(default=lambda value: {"set": sorted(value)})
    assert encode([{1, 2}]) == json.dumps([{"set": [1, 2]}])
    with pytest.raises(TypeError):
        jsontext.encoder()({1})
