"""`batchrun run` against the sandbox: wall time against the ideal, requests, CPU and memory.

    python bench/run_bench.py                  # 2,000 predictions of 2 s, concurrency 200
    python bench/run_bench.py --no-wait        # the server ignores Prefer: wait (pure polling)
    python bench/run_bench.py --no-wait --jitter 0.5   # run times 2 s ± 25% (uniform)
    python bench/run_bench.py --n 500 --latency 1 --concurrency 100 --json out.json

The sandbox runs as `batchrun sandbox` in its own process, so the CPU time measured here
(getrusage of this process: user + system) is batchrun's alone. No rate limit on either side.

    ideal          ceil(N / concurrency) × latency: waves of `concurrency` predictions
    ratio          wall time / ideal (goal ≤ 1.05)
    requests/pred  API requests (creates, polls, lists...) per prediction, downloads not counted
                   (goal ≤ 1.2 when the server honours Prefer: wait)
    CPU ms/pred    this process's CPU time per prediction, planning and downloads included
                   (goal ≤ 2 ms)
    peak RSS       the largest resident set of this process
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sandbox_capacity import raise_open_files, start_sandbox

from batchrun.engine.runner import RunOptions, RunSummary, run
from batchrun.spec.load import load_spec

SPEC = """\
batchrun: 1
concurrency: {concurrency}
rate: 1000000/min
requests: 1000000/min
jobs:
  - model: acme/painter
    input: {{prompt: "bench ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""


def measure(
    n: int, latency: float, concurrency: int, wait: bool, jitter: float = 0.0
) -> dict[str, float | int | str]:
    """Run one benchmark and return its figures."""
    process, base = start_sandbox(latency)
    try:
        settings = {"honor_wait": wait, "jitter": jitter}
        httpx.post(f"{base}/_sandbox/config", json=settings).raise_for_status()
        with tempfile.TemporaryDirectory() as folder:
            spec_path = Path(folder) / "bench.yaml"
            spec_path.write_text(SPEC.format(n=n, concurrency=concurrency))
            spec = load_spec(spec_path)
            options = RunOptions(base_url=base, token="bench", out=Path(folder) / "run")
            before = resource.getrusage(resource.RUSAGE_SELF)
            began = time.perf_counter()
            summary: RunSummary = run(spec, options)
            wall = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_SELF)
        server = httpx.get(f"{base}/_sandbox/stats").json()
    finally:
        process.terminate()
        process.wait(10)
    if not summary.ok:
        raise SystemExit(f"the run did not succeed: {summary.tally}")
    stats = summary.client
    api_requests = stats.creates + stats.gets + stats.lists + stats.cancels + stats.models
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    ideal = math.ceil(n / concurrency) * latency
    return {
        "predictions": n,
        "latency_s": latency,
        "jitter_s": jitter,
        "concurrency": concurrency,
        "server_honours_wait": str(wait).lower(),
        "wall_s": round(wall, 3),
        "ideal_s": ideal,
        "ratio": round(wall / ideal, 4),
        "requests_per_prediction": round(api_requests / n, 3),
        "creates": stats.creates,
        "polls": stats.gets,
        "downloads": stats.downloads,
        "rate_limited": stats.rate_limited,
        "server_requests": sum(server["requests"].values()),
        "cpu_ms_per_prediction": round(cpu * 1000 / n, 3),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="predictions")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per prediction")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--no-wait", action="store_true", help="the server ignores Prefer: wait")
    parser.add_argument(
        "--jitter", type=float, default=0.0, help="each run time is latency ± up to this (s)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    raise_open_files()
    figures = measure(args.n, args.latency, args.concurrency, not args.no_wait, args.jitter)
    width = max(len(name) for name in figures)
    for name, value in figures.items():
        print(f"{name.ljust(width)}  {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
