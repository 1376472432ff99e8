"""A spec's prices, budget and timeouts: each job's price and timeout, and what a budget needs.

A job's price is its own `price`, else its model's entry in the `prices` file, else the spec's
top-level `price`; its timeout is its own, else the spec's. A budget can only be kept when the
most a prediction can cost is known before it is created (`batchrun.cost.Price.ceiling`): every
job needs a price, a per-second price a timeout, and an output-token price a bound on the
tokens (`max_tokens` in the input). What breaks that is a spec error, placed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from batchrun import safefs
from batchrun.cost import MAX_TOKEN_INPUTS, PRICE_FIELDS, Price, parse_duration
from batchrun.errors import SpecError
from batchrun.spec.checker import Checker
from batchrun.spec.describe import join_names, show
from batchrun.spec.yamlpos import KeyPath, YamlDocument, parse_yaml

# A prices file longer than this is not a list of prices a person reviews.
MAX_PRICES_BYTES = 1 << 20


class JobMoney(NamedTuple):
    """What one job's predictions cost and how long they may run."""

    price: Price | None = None
    source: str = ""  # where the price was written: `price`, `jobs[0].price` or `prices.yaml`
    timeout: float | None = None


class PriceList(NamedTuple):
    """A `prices` file: a price per model `owner/name`."""

    written: str  # as the spec names it: where a job's price came from
    shown: str
    by_model: Mapping[str, Price]


def duration(check: Checker, top: Mapping[str, Any], path: KeyPath) -> float | None:
    """The `timeout` at `path` in seconds (the schema has checked its form), if written."""
    written = top.get(str(path[-1]))
    if written is None or check.is_blocked(path):
        return None
    try:
        return parse_duration(written)
    except ValueError as error:
        check.add(path, str(error))
        return None


def price_at(check: Checker, value: Any, path: KeyPath) -> Price | None:
    """The price written at `path`, if one is and the schema took it."""
    if not isinstance(value, dict) or not value or check.is_blocked(path):
        return None
    return Price.from_json(value)


def price_list(check: Checker, written: Any) -> PriceList | None:
    """The `prices` file the spec names, read and checked; its problems placed in it."""
    if not isinstance(written, str) or check.is_blocked(("prices",)):
        return None
    file = check.reach(("prices",), written)
    if file is None:
        return None
    shown = check.shown_file(file)
    try:
        if file.stat().st_size > MAX_PRICES_BYTES:
            check.add(("prices",), f"'{written}' is larger than {MAX_PRICES_BYTES:,} bytes")
            return None
        # A regular file only (a FIFO is refused, not waited on), read within the cap.
        text = safefs.read_regular(file, MAX_PRICES_BYTES, follow=True).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        check.add(("prices",), f"cannot read '{written}': {reason}")
        return None
    try:
        doc = parse_yaml(text, shown)
    except SpecError as error:
        check.issues.extend(error.issues)
        return None
    return PriceList(written, shown, _prices(check, doc))


def _prices(check: Checker, doc: YamlDocument) -> dict[str, Price]:
    if not isinstance(doc.value, dict):
        check.issues.append(doc.issue((), "expected a mapping of model (owner/name) to its price"))
        return {}
    found: dict[str, Price] = {}
    for model, price in doc.value.items():
        where: KeyPath = (model,)
        if "/" not in model or ":" in model:
            check.issues.append(
                doc.issue(where, f"expected a model as owner/name, got {show(model)}", at_key=True)
            )
            continue
        if not isinstance(price, dict) or not price:
            check.issues.append(doc.issue(where, "expected a price, like {per_image: 0.003}"))
            continue
        bad = False
        for name, amount in price.items():
            if name not in PRICE_FIELDS:
                message = f"unknown price {show(name)}; the prices are {join_names(PRICE_FIELDS)}"
                check.issues.append(doc.issue((*where, name), message, at_key=True))
                bad = True
            elif isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
                message = f"expected a number of USD, 0 or more, got {show(amount)}"
                check.issues.append(doc.issue((*where, name), message))
                bad = True
            elif not math.isfinite(amount):
                check.issues.append(doc.issue((*where, name), "expected a finite number"))
                bad = True
        if not bad:
            found[model] = Price.from_json(price)
    return found


def job_money(
    check: Checker,
    job: Mapping[str, Any],
    path: KeyPath,
    model: str | None,
    top: JobMoney,
    prices: PriceList | None,
) -> JobMoney:
    """The price and timeout of the job written at `path` (`model`: its owner/name, if any)."""
    timeout = duration(check, job, (*path, "timeout"))
    own = price_at(check, job.get("price"), (*path, "price"))
    if own is not None:
        return JobMoney(own, f"jobs[{path[-1]}].price", timeout or top.timeout)
    listed = prices.by_model.get(model) if prices is not None and model else None
    if listed is not None and prices is not None:
        return JobMoney(listed, prices.written, timeout or top.timeout)
    return JobMoney(top.price, top.source, timeout or top.timeout)


def check_budget(
    check: Checker,
    job_id: str,
    job: Mapping[str, Any],
    path: KeyPath,
    money: JobMoney,
) -> None:
    """The problems that leave a budget unable to bound what the job at `path` spends."""
    price = money.price
    if price is None:
        check.add(
            ("budget",),
            f"job '{job_id}' has no price, so the budget cannot bound what it spends; give it"
            " a `price` (or its model an entry in the `prices` file)",
        )
        return
    where = _price_path(money, path)
    if price.by_time and money.timeout is None:
        check.add(
            (*where, "per_second") if where else ("budget",),
            f"job '{job_id}' pays per second and has no `timeout`, so a prediction's cost has no"
            " bound and the budget cannot be kept; add `timeout: 5m` (or what its predictions"
            " may take)",
        )
    inputs = job.get("input")
    bounded = isinstance(inputs, dict) and any(name in inputs for name in MAX_TOKEN_INPUTS)
    if price.per_million_output_tokens > 0 and not bounded:
        check.add(
            (*where, "per_million_output_tokens") if where else ("budget",),
            f"job '{job_id}' pays per output token and its input sets no"
            " max_tokens or max_new_tokens, so a prediction's cost has no bound and the"
            " budget cannot be kept; add `max_tokens` to its input",
        )


def _price_path(money: JobMoney, path: KeyPath) -> KeyPath | None:
    if money.source == "price":
        return ("price",)
    if money.source.startswith("jobs["):
        return (*path, "price")
    return None
