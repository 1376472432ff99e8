"""Shards on one account: 429s with the rate shared among the shards (the default) and without.

    python bench/shard_rate.py                    # 4 shards, 400 creates, a 3000/min limit
    python bench/shard_rate.py --shards 8 --keys 800

A sandbox (in this process, on loopback) allows LIMIT creates a minute with a burst of one
second's worth, for everyone: an account's limit. N `batchrun run --shard I/N` processes start at
once on one spec whose `rate` is that limit, first with `--shard-rate shared` (each shard keeps to
1/N of it), then with `--shard-rate whole` (each keeps to all of it: N times the account's limit).

Columns: the 429s the server answered, the creates it accepted (each key once), and the wall
time until the last shard ended.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batchrun.sandbox import Sandbox, SandboxConfig

SPEC = """\
batchrun: 1
concurrency: 64
rate: {limit}
jobs:
  - model: acme/painter
    input: {{prompt: "shard ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {keys}]}}}}
"""


def race(folder: Path, shards: int, keys: int, limit: str, mode: str) -> tuple[int, int, float]:
    """Run `shards` shard processes at once; (429s, creates, wall seconds)."""
    sandbox = Sandbox(SandboxConfig(latency=0.05).updated(rate_limit=limit)).start()
    try:
        spec = folder / f"{mode}.yaml"
        spec.write_text(SPEC.format(limit=limit, keys=keys))
        env = {**os.environ, "REPLICATE_API_TOKEN": "r8_bench"}
        command = [sys.executable, "-m", "batchrun", "run", str(spec), "--quiet"]
        began = time.perf_counter()
        children = [
            subprocess.Popen(
                [
                    *command,
                    *("--base-url", sandbox.base_url, "--out", str(folder / mode)),
                    *("--shard", f"{index}/{shards}", "--shard-rate", mode),
                ],
                env=env,
            )
            for index in range(1, shards + 1)
        ]
        codes = [child.wait() for child in children]
        wall = time.perf_counter() - began
        if any(codes):
            raise SystemExit(f"a shard failed: exit codes {codes}")
        stats = sandbox.state.snapshot()
        return stats["throttled"], stats["creates"], wall
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--keys", type=int, default=400)
    parser.add_argument("--limit", default="3000/min", help="the account's create limit")
    args = parser.parse_args()
    print(f"{args.shards} shards at once, {args.keys} creates, the account allows {args.limit}")
    print(f"{'--shard-rate':>14} {'429s':>6} {'creates':>8} {'wall s':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for mode in ("shared", "whole"):
            throttled, creates, wall = race(Path(folder), args.shards, args.keys, args.limit, mode)
            print(f"{mode:>14} {throttled:>6} {creates:>8} {wall:>7.1f}")


if __name__ == "__main__":
    main()
