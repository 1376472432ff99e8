"""How a run's memory grows with its size: peak RSS at two sizes, and the slope per prediction.

    python bench/run_memory.py                       # 10,000 and 50,000 predictions
    python bench/run_memory.py --sizes 2000,10000    # smaller, to try it
    python bench/run_memory.py --trace 5000          # where what is kept was allocated
    python bench/run_memory.py --trace 5000,10000    # and what each prediction more keeps

Each size runs in its own child process (`batchrun.engine.runner.run` against a fresh `batchrun
sandbox` process, predictions that end at once, the same concurrency at every size), so its peak
resident set is that run's alone. With the same number in flight at both sizes, what grows with
the size is what the run keeps of predictions that are over:

    slope KB/pred = (peak RSS of the larger run - peak RSS of the smaller) / (difference in N)

The peak is the highest the resident set ever stood, a maximum over the allocator's passing
spikes (a table rebuilt beside the old one, a batch of journal lines), and a longer run meets
more of them. So each child also reads its resident set at one moment near the end (while the
last TRACE_BEFORE_END predictions per place in flight are still to finish), and a second slope
is drawn from those: what the run holds then, spikes aside.

Goal (issue 22): at most 0.1 KB per prediction beyond what is in flight. `--trace N` runs one
child under tracemalloc and lists where what was alive near the end of the run was allocated
(the snapshot is taken while the last TRACE_BEFORE_END predictions are still to finish, so what
the run holds only while it runs is in it). `--trace N1,N2` runs two and prints the difference
per prediction, line by line, and in all: the bytes each finished prediction leaves behind, a
steadier figure than the RSS slope (the allocator keeps freed memory as it sees fit).
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
from pathlib import Path
from typing import Any

import httpx
from sandbox_capacity import raise_open_files, start_sandbox

SPEC = """\
batchrun: 1
concurrency: {concurrency}
rate: 100000000/min
requests: 100000000/min
jobs:
  - model: acme/painter
    input: {{prompt: "memory ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""
GOAL_KB = 0.1  # issue 22
# Traced runs snapshot their memory while this many predictions per place in flight are still to
# finish: the producers are still walking the plan, and nothing of the run has been let go yet.
TRACE_BEFORE_END = 4
# Allocation sites a traced child reports: those holding at least this many bytes per prediction
# (fewer would be lines that hold a constant, as the interpreter's own).
TRACE_MIN_BYTES_PER_PRED = 0.5


def resident_mb() -> float | None:
    """The resident set of this process now (Linux), in MB."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


class _Snapshot:
    """A progress display that reads the resident set (and, traced, takes the snapshot) once
    the run is near its end."""

    def __init__(self, at: int, trace: bool) -> None:
        self.at = at
        self.trace = trace
        self.taken: Any = None
        self.resident: float | None = None

    def start(self, tally: Any) -> None:
        pass

    def update(self, tally: Any) -> None:
        import tracemalloc

        if self.resident is None and tally.done >= self.at:
            self.resident = resident_mb()
            if self.trace:
                self.taken = tracemalloc.take_snapshot()

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def child(base_url: str, n: int, concurrency: int, trace: bool) -> dict[str, Any]:
    """One run of N predictions; its figures (and, traced, where what it holds was allocated)."""
    import tracemalloc

    from batchrun.engine.runner import RunOptions, run
    from batchrun.spec.load import load_spec

    snapshot = _Snapshot(max(0, n - TRACE_BEFORE_END * concurrency), trace)
    with tempfile.TemporaryDirectory(prefix="memory-") as name:
        folder = Path(name)
        spec_path = folder / "memory.yaml"
        spec_path.write_text(SPEC.format(n=n, concurrency=concurrency))
        spec = load_spec(spec_path)
        if trace:
            tracemalloc.start(8)
        began = time.perf_counter()
        options = RunOptions(base_url=base_url, token="bench", out=folder / "run")
        summary = run(spec, options, progress=snapshot)
        wall = time.perf_counter() - began
        # Before the temporary folder is removed: listing 50,000 files to remove them holds
        # a few MB of directory entries, which is shutil's peak, not the run's.
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sites: dict[str, list[int]] = {}
        traced = 0
        if trace and snapshot.taken is not None:
            taken = snapshot.taken.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
            for stat in taken.statistics("traceback"):
                traced += stat.size
                frames = [f"{f.filename.split('/')[-1]}:{f.lineno}" for f in stat.traceback]
                site = sites.setdefault(" < ".join(reversed(frames[-4:])), [0, 0])
                site[0] += stat.size
                site[1] += stat.count
    least = TRACE_MIN_BYTES_PER_PRED * n
    return {
        "n": n,
        "ok": summary.ok,
        "succeeded": summary.tally.succeeded,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 2),
        "rss_near_end_mb": round(snapshot.resident or 0.0, 2),
        "traced_bytes": traced,
        "sites": {where: got for where, got in sites.items() if got[0] >= least},
    }


def show_sites(figures: dict[str, Any]) -> list[str]:
    """The largest allocation sites of one traced run, per prediction."""
    n, sites = figures["n"], figures["sites"]
    biggest = sorted(sites.items(), key=lambda item: -item[1][0])[:15]
    return [
        f"{size / n:8.1f} B/pred {count:8d} blocks  {where}" for where, (size, count) in biggest
    ]


def show_growth(small: dict[str, Any], large: dict[str, Any]) -> list[str]:
    """What grew between two traced runs, per prediction more, by allocation site."""
    more = large["n"] - small["n"]
    grown = {
        where: (size - small["sites"].get(where, [0, 0])[0]) / more
        for where, (size, _) in large["sites"].items()
    }
    biggest = sorted(grown.items(), key=lambda item: -item[1])[:15]
    return [f"{per:8.1f} B/pred  {where}" for where, per in biggest if per >= 0.5]


def measure(n: int, concurrency: int, trace: bool = False) -> dict[str, Any]:
    """A fresh sandbox and a child process for one run of N."""
    process, base = start_sandbox(0.0)
    try:
        httpx.post(f"{base}/_sandbox/config", json={"honor_wait": True}).raise_for_status()
        argv = [sys.executable, __file__, "--child", str(n), "--concurrency", str(concurrency)]
        argv += ["--base-url", base] + (["--traced"] if trace else [])
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"child failed: {done.stderr[-2000:]}")
        figures: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
        return figures
    finally:
        process.terminate()
        process.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,50000", help="two run sizes, comma-separated")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--trace", help="traced runs of this size (or two sizes, N1,N2, to compare) instead"
    )
    parser.add_argument("--json", type=Path, help="where to write the figures")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.base_url, args.child, args.concurrency, args.traced)))
        return 0
    raise_open_files()
    if args.trace:
        sizes = [int(size) for size in args.trace.split(",")]
        load = os.getloadavg()[0]
        traced = [measure(size, args.concurrency, trace=True) for size in sizes]
        print(f"concurrency {args.concurrency}, load average {load:.2f} before")
        for figures in traced:
            print(
                f"N={figures['n']}: peak RSS {figures['peak_rss_mb']} MB (traced), "
                f"{figures['traced_bytes'] / 1e6:.2f} MB traced near the end; by site:"
            )
            print("\n".join(show_sites(figures)))
        if len(traced) == 2:
            small, large = traced
            per = (large["traced_bytes"] - small["traced_bytes"]) / (large["n"] - small["n"])
            print(f"traced bytes retained per prediction: {per:.1f} (goal <= {GOAL_KB * 1024:.0f})")
            print("\n".join(show_growth(small, large)))
        return 0
    small_n, large_n = (int(size) for size in args.sizes.split(","))
    load = os.getloadavg()[0]
    small, large = measure(small_n, args.concurrency), measure(large_n, args.concurrency)
    for row in (small, large):
        if not row["ok"]:
            raise SystemExit(f"the run of {row['n']} did not succeed")
    slope = (large["peak_rss_mb"] - small["peak_rss_mb"]) * 1024 / (large_n - small_n)
    near_end = (large["rss_near_end_mb"] - small["rss_near_end_mb"]) * 1024 / (large_n - small_n)
    print(f"concurrency {args.concurrency}, load average {load:.2f} before")
    print("| predictions | wall s | CPU s | peak RSS MB | RSS near the end MB |")
    print("|---|---|---|---|---|")
    for row in (small, large):
        figures = (row["wall_s"], row["cpu_s"], row["peak_rss_mb"], row["rss_near_end_mb"])
        print(f"| {row['n']:,} | " + " | ".join(str(figure) for figure in figures) + " |")
    print(f"RSS slope: {slope:.3f} KB per prediction (goal ≤ {GOAL_KB})")
    print(f"RSS near the end: {near_end:.3f} KB per prediction")
    out = args.json or Path(__file__).parent / "results" / "run_memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "load_before": load,
        "runs": [small, large],
        "slope_kb_per_prediction": slope,
        "near_end_kb_per_prediction": near_end,
    }
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
