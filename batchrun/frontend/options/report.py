"""`batchrun report RUN_OR_SPEC`: which run folder, its grid's layout, and where the page goes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReportArgs:
    """`batchrun report RUN_OR_SPEC`"""

    target: str
    rows: str | None = None
    cols: str | None = None
    output: str | None = None
    all: bool = False
    # Files shown are embedded in report.html up to this many MB in all: a page of that size
    # still opens at once in a browser and fits an e-mail or a CI artifact; 0: always linked.
    embed_limit: float = 25.0
    compare: str | None = None  # another run folder, or a git revision of the spec
