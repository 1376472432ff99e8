"""A prediction's variables as flat columns: a row value's fields become `row.prompt`, ...

Tables (a pull-request comment, CSV, a dataset's metadata) want one column per variable;
matrix values that are mappings (csv and jsonl rows) would otherwise be one JSON blob.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# The types whose values are never a mapping to spread: a type check, not an isinstance.
NOT_MAPPINGS = frozenset((str, int, float, bool, list, type(None)))


def flat_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    """{"row": {"prompt": "x"}, "seed": 1} → {"row.prompt": "x", "seed": 1}, at any depth."""
    flat: dict[str, Any] = {}
    for name, value in variables.items():
        # What JSON makes is asked about before the abstract class, whose check costs 20 times
        # more: an export flattens every row's variables.
        kind = type(value)
        mapping = kind is dict or (kind not in NOT_MAPPINGS and isinstance(value, Mapping))
        if mapping and value:
            for inner, item in flat_vars(value).items():
                flat[f"{name}.{inner}"] = item
        else:
            flat[name] = value
    return flat
