"""What each value of each variable cost (`report`'s cost tables), added up from the table's
columns: as the rule says, for values of every kind, nested ones flattened, and a variable with
too many values to show left to grow no further."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from runfolder import rec, write_run

from batchrun.manifest import tablevalues
from batchrun.manifest.table import load_table
from batchrun.planner.columns import flat_vars
from batchrun.readout.status import MAX_COST_VALUES, summarize_table

VALUES: list[Any] = [
    1,
    "1",  # shown as the int 1 is: one entry for both
    True,
    2.5,
    None,
    "héllo",
    [1, "a"],
    {"prompt": "x", "size": {"w": 64}},  # flattened: row.prompt, row.size.w
    10**30,  # beyond 64 bits
]


def expected(variables: list[dict[str, Any]], spent: list[float]) -> dict[str, dict[str, float]]:
    """The rule, record by record, as the report states it."""
    found: dict[str, dict[str, float]] = {}
    for each, cost in zip(variables, spent, strict=True):
        for name, value in flat_vars(each).items():
            shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            values = found.setdefault(name, {})
            if len(values) > MAX_COST_VALUES and shown not in values:
                continue
            values[shown] = values.get(shown, 0.0) + cost
    return found


def test_each_value_costs_what_its_keys_cost(tmp_path: Path) -> None:
    variables = [
        {"row": VALUES[i % len(VALUES)], "seed": i, "style": VALUES[(i * 7) % len(VALUES)]}
        for i in range(3 * (MAX_COST_VALUES + 10))
    ]
    # Multiples of 1/512: nine decimals (as the journal writes a cost), sums exact in any order
    spent = [(i % 13 + 1) / 512 for i in range(len(variables))]
    records = [
        rec(f"{i:016x}", vars=each, cost=cost)
        for i, (each, cost) in enumerate(zip(variables, spent, strict=True))
    ]
    write_run(tmp_path, records)
    table = load_table(tmp_path, variables=True)
    rows = list(table.counted_rows(None))
    status = summarize_table(table, rows, run_dir=tmp_path, costs_by_value=True)
    assert status.var_spent == expected(variables, spent)
    assert len(status.var_spent["seed"]) == MAX_COST_VALUES + 1  # stopped growing
    assert status.var_spent["row.size.w"] == {"64": status.var_spent["row.prompt"]["x"]}


def test_a_variable_that_keeps_no_values_costs_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past WIDE_VALUES values a variable keeps their digests (a text of its own per key): its
    cost tables are the same, a mapping's fields read back from the lines, and one with more
    values priced than a table shows is left out without reading any."""
    variables = [
        {
            "text": f"text {i}",  # a text of its own: no table
            "row": {"prompt": f"p {i}", "size": VALUES[i % 3]},  # row.size: a table
            "few": [f"t {i % 3}"],  # three values, more than WIDE_VALUES priced: a table
            "style": VALUES[(i * 7) % len(VALUES)],
        }
        for i in range(3 * (MAX_COST_VALUES + 10))
    ]
    records = [
        rec(f"{i:016x}", vars=each, cost=(i % 13 + 1) / 512) for i, each in enumerate(variables)
    ]
    write_run(tmp_path, records)
    kept = load_table(tmp_path, variables=True)
    rows = list(kept.counted_rows(None))
    costs = summarize_table(kept, rows, run_dir=tmp_path, costs_by_value=True).costliest()
    assert set(costs) == {"row.size", "few", "style"}
    monkeypatch.setattr(tablevalues, "WIDE_VALUES", 2)
    table = load_table(tmp_path, variables=True)
    assert all(values.wide for values in table.variables.values())
    read: list[int] = []
    value_at = table.value_at
    monkeypatch.setattr(table, "value_at", lambda name, at: read.append(at) or value_at(name, at))
    status = summarize_table(table, rows, run_dir=tmp_path, costs_by_value=True)
    assert status.costliest() == costs
    assert status.crowded == {"text"}
    # Each row's value of the two that take mappings (row, style); each of `few`'s once.
    assert len(read) == 2 * len(rows) + 3
