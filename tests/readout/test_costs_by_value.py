"""What each value of each variable cost (`report`'s cost tables), added up from the table's
columns: as the rule says, for values of every kind, nested ones flattened, and a variable with
too many values to show left to grow no further."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runfolder import rec, write_run

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
