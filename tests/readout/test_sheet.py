"""A CSV cell's text (`sheet.cell`): whatever the value, the one rule of the module docstring,
also where a number takes the short way past the JSON encoder."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from batchrun.readout.sheet import FORMULA_STARTS, cell


def rule(value: Any) -> str:
    """The docstring's rule, written plainly: None empty, text as it is, anything else compact
    JSON; a leading `'` where a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    )
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class Text(str):
    """A str subclass (an enum's value, as `Status` is): text, not JSON."""


values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),  # NaN and infinities too: JSON's own words for them
        st.text(max_size=5),
        st.sampled_from(["=1+1", "+x", "-3", "@a", "\tx", "\rx"]).map(Text),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


@settings(max_examples=500, deadline=None)
@given(values)
def test_a_cell_is_the_rule(value: Any) -> None:
    assert cell(value) == rule(value)


def test_numbers_and_formulas() -> None:
    assert [cell(v) for v in (-3, 2.5, -0.0, float("inf"), True, 10**20)] == [
        "'-3", "2.5", "'-0.0", "Infinity", "true", "100000000000000000000"
    ]  # fmt: skip
    assert cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert cell({"a": [1, None]}) == '{"a":[1,null]}'
