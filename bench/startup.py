"""How long an offline `batchrun validate` of a small spec takes, and what it imports.

    python bench/startup.py                 # 10 runs of `batchrun validate` on a 2-key spec
    python bench/startup.py --runs 20 --json out.json

Each run is a fresh `python -m batchrun validate SPEC` process, timed from the outside (so
interpreter start-up counts, as it does for a user). A last run under `python -X importtime`
lists the heaviest imports and whether the HTTP stack (httpx, rich, anyio, h11) was loaded:
offline, nothing may need it.

Goal (issue 22): ≤ 0.12 s, no HTTP stack imported. Kept out of the test suite: timings belong
to a quiet machine; tests/commands/test_startup.py checks the imports, which do not depend on
the load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
batchrun: 1
jobs:
  - model: acme/painter
    input: {prompt: "a ${x}"}
    matrix: {x: [fox, cat]}
"""
HTTP_STACK = ("httpx", "httpcore", "h11", "rich", "anyio")
GOAL_SECONDS = 0.12  # issue 22


def one_run(spec: Path, env: dict[str, str]) -> float:
    """Seconds for one `batchrun validate SPEC` process, start to exit."""
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "batchrun", "validate", str(spec)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - began


def imports(spec: Path, env: dict[str, str]) -> dict[str, int]:
    """Each top-level package `validate` imports, with its cumulative import time in µs."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "batchrun", "validate", str(spec)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    seen: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        cumulative, name = fields[1].strip(), fields[2].strip()
        if not cumulative.isdigit():
            continue
        top = name.split(".")[0]
        if name == top:
            seen[top] = max(seen.get(top, 0), int(cumulative))
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs (default 10)")
    parser.add_argument("--json", type=Path, help="where to write the figures")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REPLICATE_", "PYTHON"))}
    with tempfile.TemporaryDirectory() as folder:
        spec = Path(folder) / "small.yaml"
        spec.write_text(SPEC, encoding="utf-8")
        one_run(spec, env)  # warm the disk cache and the bytecode
        load = os.getloadavg()[0]
        times = [one_run(spec, env) for _ in range(args.runs)]
        loaded = imports(spec, env)
    http = sorted(name for name in HTTP_STACK if name in loaded)
    heaviest = sorted(loaded.items(), key=lambda item: -item[1])[:8]
    figures = {
        "runs": args.runs,
        "min_s": round(min(times), 4),
        "median_s": round(statistics.median(times), 4),
        "goal_s": GOAL_SECONDS,
        "http_stack_imported": http,
        "heaviest_imports_ms": {name: round(us / 1000, 1) for name, us in heaviest},
        "load_before": round(load, 2),
    }
    print("| runs | min s | median s | goal s | HTTP stack imported | load |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.runs} | {figures['min_s']:.3f} | {figures['median_s']:.3f} | {GOAL_SECONDS} "
        f"| {', '.join(http) or 'none'} | {load:.2f} |"
    )
    print("heaviest imports (ms, cumulative):", figures["heaviest_imports_ms"])
    out = args.json or Path(__file__).parent / "results" / "startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
