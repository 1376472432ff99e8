"""Rate-limit adherence: how close batchrun's creates come to the server's limit, and how many 429s.

    python bench/rate_adherence.py                       # 60 s of creates per scenario
    python bench/rate_adherence.py --seconds 30 --json bench/results/rate.json

The sandbox runs as `batchrun sandbox` in its own process with a create limit and a burst
(a token bucket that answers 429 with Retry-After); batchrun runs in this process at its default
create rate, 600/min (the spec sets no `rate`), with enough concurrency and short enough
predictions that the rate, not the concurrency, is what bounds it.

Scenarios:
    matched    the server allows 600/min with a burst of 10 (one second's worth), batchrun's default
    stricter   the server allows 300/min with a burst of 5: half of what batchrun asks for

Columns:
    creates         creates the server accepted (= predictions; each key once)
    span s          from the first accepted create to the last (server timestamps)
    achieved /s     (creates - burst) / span: the sustained rate, the burst's head start removed
    of limit        achieved / the server's limit (goal: close to 1 without exceeding it)
    429s            creates the server refused (and the client counted)
    wall s          the whole run, downloads included

Below the table, each scenario's accepted creates per 10 s show when the rate dipped and how
long it took to come back.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sandbox_capacity import raise_open_files, start_sandbox

from batchrun.engine.runner import RunOptions, run
from batchrun.manifest.reader import load_records
from batchrun.spec.load import load_spec

BENCH = Path(__file__).resolve().parent
LATENCY = 0.5
SCENARIOS = {"matched": (600, 10), "stricter": (300, 5)}  # per minute, burst

SPEC = """\
batchrun: 1
concurrency: 100
jobs:
  - model: acme/painter
    input: {{prompt: "rate ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""


def parse_time(text: str) -> float:
    """Seconds since the epoch of an ISO 8601 timestamp with a trailing Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def measure(name: str, per_minute: int, burst: int, seconds: float) -> dict[str, Any]:
    """One scenario: a fresh sandbox with the limit, a run at batchrun's default rate."""
    n = math.ceil(per_minute * seconds / 60) + burst
    process, base = start_sandbox(LATENCY)
    try:
        limits = {"rate_limit": f"{per_minute}/min", "rate_limit_burst": burst}
        httpx.post(f"{base}/_sandbox/config", json=limits).raise_for_status()
        with tempfile.TemporaryDirectory() as folder:
            spec_path = Path(folder) / "rate.yaml"
            spec_path.write_text(SPEC.format(n=n))
            spec = load_spec(spec_path)
            began = time.perf_counter()
            summary = run(spec, RunOptions(base_url=base, token="bench", out=Path(folder) / "run"))
            wall = time.perf_counter() - began
            _, found = load_records(Path(folder) / "run")
        stats = httpx.get(f"{base}/_sandbox/stats").json()
    finally:
        process.terminate()
        process.wait(10)
    if not summary.ok:
        first = summary.tally.failures[0].error if summary.tally.failures else "?"
        raise SystemExit(f"{name}: the run did not succeed: {summary.tally.finished}; {first}")
    created = sorted(parse_time(r.created_at) for r in found.values() if r.created_at)
    span = created[-1] - created[0]
    limit = per_minute / 60
    # Accepted creates per 10 s from the first one: where the rate dipped, and for how long.
    per_10s = [0] * (int(span // 10) + 1)
    for moment in created:
        per_10s[int((moment - created[0]) // 10)] += 1
    achieved = (len(created) - burst) / span
    return {
        "scenario": name,
        "server_limit_per_min": per_minute,
        "server_burst": burst,
        "batchrun_rate_per_min": round(spec.rate.per_second * 60),
        "predictions": n,
        "creates": stats["creates"],
        "span_s": round(span, 2),
        "achieved_per_s": round(achieved, 3),
        "fraction_of_limit": round(achieved / limit, 3),
        "throttled_429": stats["throttled"],
        "client_rate_limited": summary.client.rate_limited,
        "wall_s": round(wall, 2),
        "creates_per_10s": per_10s,
        "load_before": round(os.getloadavg()[0], 2),
    }


COLUMNS = (
    ("scenario", "scenario", "{}"),
    ("server_limit_per_min", "server limit /min", "{}"),
    ("server_burst", "burst", "{}"),
    ("creates", "creates", "{}"),
    ("span_s", "span s", "{:.1f}"),
    ("achieved_per_s", "achieved /s", "{:.2f}"),
    ("fraction_of_limit", "of limit", "{:.3f}"),
    ("throttled_429", "429s", "{}"),
    ("wall_s", "wall s", "{:.1f}"),
)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    head = [title for _, title, _ in COLUMNS]
    body = [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), rule, *(line(cells) for cells in body)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="of creates per scenario")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=", ".join(SCENARIOS) + " (default both)"
    )
    parser.add_argument("--json", type=Path, help="where to write the figures")
    args = parser.parse_args()
    raise_open_files()
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario: {', '.join(unknown)}")
    rows = []
    for name in names:
        per_minute, burst = SCENARIOS[name]
        print(f"measuring {name} ({per_minute}/min)...", file=sys.stderr, flush=True)
        rows.append(measure(name, per_minute, burst, args.seconds))
    print(table(rows))
    for row in rows:
        print(f"{row['scenario']}: creates per 10 s: {row['creates_per_10s']}")
    path = args.json or BENCH / "results" / "rate_adherence.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seconds": args.seconds, "rows": rows}, indent=2) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
