"""Plan a 1,000,000-prediction spec; print predictions per second and peak memory.

    python bench/plan_bench.py              # the full million, timed, peak RSS
    python bench/plan_bench.py --rows 200   # 200 × 1,000 rows, faster
    python bench/plan_bench.py --tracemalloc 100000   # also trace Python allocations on 100k
    python bench/plan_bench.py --files '${subject}/${seed}${ext}'   # `files` filled per row
    python bench/plan_bench.py --rows 200 --cli-json   # also `batchrun plan --json > /dev/null`,
                                                       # with and without PYTHONUNBUFFERED=1

Goal (issue #2): at least 100,000 predictions/s and under 300 MB peak. Kept out of the test
suite on purpose: timings belong to a quiet machine, not to CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from batchrun.planner.expand import iter_plan
from batchrun.spec.load import load_spec

SPEC = """\
batchrun: 1
name: bench
jobs:
  - model: acme/image-model
    input:
      prompt: "${{subject}}, variation ${{seed}}"
      seed: ${{seed}}
      width: 512
      height: 512
      negative_prompt: blurry, low quality
    matrix:
      subject: {{lines: subjects.txt}}
      seed: {{range: [0, {seeds}]}}
    exclude:
      - {{subject: subject 0, seed: 0}}
    include:
      - {{subject: an extra subject, seed: 42}}
"""


def write_spec(folder: Path, subjects: int, seeds: int, files: str | None = None) -> Path:
    """A spec of `subjects` × `seeds` rows, less one excluded, plus one included; with
    `files`, a files template the planner fills (and checks for clashes) for every row."""
    lines = "".join(f"subject {i}\n" for i in range(subjects))
    (folder / "subjects.txt").write_text(lines, encoding="utf-8")
    spec = folder / "bench.yaml"
    text = SPEC.format(seeds=seeds)
    if files is not None:
        text = text.replace("name: bench\n", f"name: bench\nfiles: {json.dumps(files)}\n")
    spec.write_text(text, encoding="utf-8")
    return spec


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (ru_maxrss is KB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run(spec_path: Path) -> tuple[int, float, float]:
    """Load the spec and walk its whole plan (keys included): count, wall and CPU seconds."""
    started, cpu = time.perf_counter(), time.process_time()
    spec = load_spec(spec_path)
    count = 0
    for _ in iter_plan(spec):
        count += 1
    return count, time.perf_counter() - started, time.process_time() - cpu


def cli_json_seconds(spec_path: Path, unbuffered: bool) -> float:
    """Wall seconds of `batchrun plan SPEC --json > /dev/null` in a fresh process."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "batchrun", "plan", str(spec_path), "--json"],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000, help="subjects (default 1000)")
    parser.add_argument("--seeds", type=int, default=1000, help="seeds (default 1000)")
    parser.add_argument("--tracemalloc", type=int, metavar="N", help="trace a pass of ~N rows")
    parser.add_argument("--files", metavar="TEMPLATE", help="a files template (default: none)")
    parser.add_argument(
        "--cli-json", action="store_true", help="also time `batchrun plan --json` to /dev/null"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        spec = write_spec(Path(folder), args.rows, args.seeds, args.files)
        count, seconds, cpu = run(spec)
        print(f"planned {count:,} predictions in {seconds:.2f} s ({cpu:.2f} s of CPU)")
        print(f"{count / seconds:,.0f} predictions/s ({count / cpu:,.0f} per CPU second)")
        print(f"peak RSS {peak_rss_mb():.1f} MB")
        if args.cli_json:
            for unbuffered in (False, True):
                seconds = cli_json_seconds(spec, unbuffered)
                shown = "PYTHONUNBUFFERED=1" if unbuffered else "buffered"
                print(f"plan --json > /dev/null ({shown}): {seconds:.2f} s")
        if args.tracemalloc:
            small = write_spec(Path(folder), max(1, args.tracemalloc // args.seeds), args.seeds)
            tracemalloc.start()
            traced, _, _ = run(small)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            print(f"tracemalloc peak {peak / 1e6:.1f} MB over {traced:,} predictions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
