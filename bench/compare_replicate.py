"""batchrun against what users write today: the official client under an asyncio.Semaphore.

    python bench/compare_replicate.py                  # N=2000, 2 s predictions, concurrency 200
    python bench/compare_replicate.py --n 500 --latency 1 --concurrency 100 --no-wait
    python bench/compare_replicate.py --json bench/results/compare.json

One invocation measures every side in every mode on the same sandbox settings. Each (mode, side)
gets a fresh `batchrun sandbox` process (so its request counts are that side's alone) and runs
in its own child process of this script (so CPU time and peak RSS are that side's alone).

Sides:
    batchrun        `batchrun.engine.runner.run` on a spec of N predictions (downloads every file)
    replicate       the script below: `replicate.Client(base_url=...)`, `await
                    client.async_run(model, input=...)` under an asyncio.Semaphore, each output
                    file fetched with one shared httpx.AsyncClient and written to disk
    replicate-pool  the same script with the client's connection pool raised to the concurrency
                    (the official client's transport caps it at httpx's default of 100, which a
                    user only lifts by passing their own transport)

Modes: `wait`, the sandbox honours `Prefer: wait` (both clients send it); `no-wait`, it ignores
it, as some proxies do, so both must poll (the official client every 0.5 s, its default).

Columns:
    wall s          time from the first request to the last file on disk, in the child
    ratio           wall / ideal, where ideal = ceil(N / concurrency) × latency
    req/pred        API requests (under /v1) the sandbox received, per prediction
    CPU ms/pred     the child's user + system CPU over the same span, per prediction
    peak RSS MB     the child's largest resident set
    ok              predictions that ended with every file on disk
    load            the 1-minute load average just before that side ran

With --repeat R every (mode, side) is measured R times, the rounds interleaved, and each figure
is the median of its rounds (the JSON keeps every round and each figure's range).

batchrun's create rate limiter and request budget are set out of the way (1,000,000/min): the
sandbox has no rate limit here and the script has none at all. At batchrun's default of 600
creates/min the same 2,000 predictions would take 200 s by design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sandbox_capacity import raise_open_files, start_sandbox

BENCH = Path(__file__).resolve().parent
MODEL = "acme/painter"
SIDES = ("batchrun", "replicate", "replicate-pool")
MODES = ("wait", "no-wait")
TOKEN = "r8_bench_token"

SPEC = """\
batchrun: 1
concurrency: {concurrency}
rate: 1000000/min
requests: 1000000/min
jobs:
  - model: {model}
    input: {{prompt: "bench ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""


def prompt_input(i: int) -> dict[str, Any]:
    """The input of prediction `i`: the same on both sides."""
    return {"prompt": f"bench {i}", "width": 64, "height": 64}


# --- the user's script ---------------------------------------------------------------------


async def replicate_script(
    base_url: str, n: int, concurrency: int, out: Path, pool: int | None
) -> int:
    """What a user writes today: async_run under a semaphore, then fetch each file with httpx.

    Returns how many predictions ended with every file on disk. A failed prediction raises out
    of async_run; the user's gather keeps the others going and counts it.
    """
    import replicate

    extra: dict[str, Any] = {}
    if pool is not None:
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        extra["transport"] = httpx.AsyncHTTPTransport(limits=limits)
    client = replicate.Client(api_token=TOKEN, base_url=base_url, **extra)  # type: ignore[attr-defined]
    semaphore = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(timeout=60) as http:

        async def one(i: int) -> None:
            async with semaphore:
                output = await client.async_run(MODEL, input=prompt_input(i))
                assert isinstance(output, list)  # this model returns a list of files
                for index, item in enumerate(output):
                    response = await http.get(str(item))  # FileOutput or str: both are its URL
                    response.raise_for_status()
                    (out / f"{i}-{index}.png").write_bytes(response.content)

        results = await asyncio.gather(*(one(i) for i in range(n)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        print(f"replicate script: {len(failures)} failed, first: {failures[0]!r}", file=sys.stderr)
    return n - len(failures)


# --- batchrun ------------------------------------------------------------------------------


def batchrun_side(base_url: str, n: int, concurrency: int, folder: Path) -> int:
    """A run of the same N predictions through the library; returns how many succeeded."""
    from batchrun.engine.runner import RunOptions, run
    from batchrun.spec.load import load_spec

    spec_path = folder / "bench.yaml"
    spec_path.write_text(SPEC.format(n=n, concurrency=concurrency, model=MODEL))
    spec = load_spec(spec_path)
    summary = run(spec, RunOptions(base_url=base_url, token=TOKEN, out=folder / "run"))
    if not summary.ok:
        print(f"batchrun: the run did not succeed: {summary.tally}", file=sys.stderr)
    return summary.tally.succeeded


# --- one side in a child process -----------------------------------------------------------


def child(side: str, base_url: str, n: int, concurrency: int) -> dict[str, Any]:
    """Run one side here (this is the child process) and measure it."""
    raise_open_files()
    with tempfile.TemporaryDirectory(prefix=f"compare-{side}-") as name:
        folder = Path(name)
        (folder / "out").mkdir()
        before = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        if side == "batchrun":
            ok = batchrun_side(base_url, n, concurrency, folder)
        else:
            pool = concurrency if side == "replicate-pool" else None
            ok = asyncio.run(replicate_script(base_url, n, concurrency, folder / "out", pool))
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"ok": ok, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": after.ru_maxrss / 1024}


def measure(side: str, mode: str, n: int, latency: float, concurrency: int) -> dict[str, Any]:
    """A fresh sandbox, one side in a child process, and the figures of both."""
    process, base = start_sandbox(latency)
    try:
        httpx.post(
            f"{base}/_sandbox/config", json={"honor_wait": mode == "wait"}
        ).raise_for_status()
        load_before = os.getloadavg()[0]
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            side,
            "--base-url",
            base,
            "--n",
            str(n),
            "--concurrency",
            str(concurrency),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{side} ({mode}) failed:\n{done.stderr}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        stats = httpx.get(f"{base}/_sandbox/stats").json()
    finally:
        process.terminate()
        process.wait(10)
    api = sum(count for route, count in stats["requests"].items() if " /v1/" in route)
    creates = stats["creates"]
    ideal = math.ceil(n / concurrency) * latency
    return {
        "mode": mode,
        "side": side,
        "predictions": n,
        "latency_s": latency,
        "concurrency": concurrency,
        "ok": figures["ok"],
        "wall_s": round(figures["wall_s"], 3),
        "ideal_s": ideal,
        "ratio": round(figures["wall_s"] / ideal, 3),
        "requests_per_prediction": round(api / n, 3),
        "creates": creates,
        "api_requests": api,
        "file_downloads": stats["downloads"],
        "cpu_ms_per_prediction": round(figures["cpu_s"] * 1000 / n, 3),
        "peak_rss_mb": round(figures["peak_rss_mb"], 1),
        "load_before": round(load_before, 2),
        "stderr": done.stderr.strip()[-500:],
    }


MEDIAN_OF = (
    "wall_s",
    "ratio",
    "requests_per_prediction",
    "cpu_ms_per_prediction",
    "peak_rss_mb",
    "load_before",
)


def medians(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a (mode, side): the median of each figure over the rounds, and their range."""
    row = {key: value for key, value in rounds[0].items() if key not in ("round", "stderr")}
    for key in MEDIAN_OF:
        values = sorted(r[key] for r in rounds)
        row[key] = statistics.median(values)
        row[f"{key}_range"] = [values[0], values[-1]]
    row["ok"] = min(r["ok"] for r in rounds)
    return row


COLUMNS = (
    ("mode", "mode", "{}"),
    ("side", "side", "{}"),
    ("wall_s", "wall s", "{:.2f}"),
    ("ratio", "ratio", "{:.3f}"),
    ("requests_per_prediction", "req/pred", "{:.2f}"),
    ("cpu_ms_per_prediction", "CPU ms/pred", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.1f}"),
    ("ok", "ok", "{}"),
    ("load_before", "load", "{:.2f}"),
)


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    head = [title for _, title, _ in COLUMNS]
    body = [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in body:
        lines.append(
            "| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |"
        )
    return "\n".join(lines)


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """Per mode: is batchrun's ratio and req/pred better than each replicate side's?"""
    out = []
    for mode in sorted({row["mode"] for row in rows}, key=MODES.index):
        mine = next((r for r in rows if r["mode"] == mode and r["side"] == "batchrun"), None)
        if mine is None:
            continue
        for other in (r for r in rows if r["mode"] == mode and r["side"] != "batchrun"):
            parts = []
            for key, name in (("ratio", "ratio"), ("requests_per_prediction", "req/pred")):
                a, b = mine[key], other[key]
                word = "better" if a < b else "equal" if a == b else "WORSE"
                parts.append(f"{name} {a} vs {b}: {word}")
            out.append(f"{mode}: batchrun vs {other['side']}: " + "; ".join(parts))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="predictions")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per prediction")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--modes", default=",".join(MODES), help="wait, no-wait or both")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--wait", dest="modes", action="store_const", const="wait", help="only wait")
    only.add_argument(
        "--no-wait", dest="modes", action="store_const", const="no-wait", help="only no-wait"
    )
    parser.add_argument("--sides", default=",".join(SIDES), help=", ".join(SIDES))
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds; each figure is the median of the rounds"
    )
    parser.add_argument("--json", type=Path, help="where to write the figures")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        figures = child(args.child, args.base_url, args.n, args.concurrency)
        print(json.dumps(figures))
        return 0
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    unknown = sorted(set(modes) - set(MODES)) + sorted(set(sides) - set(SIDES))
    if unknown:
        parser.error(f"unknown mode or side: {', '.join(unknown)}")
    raise_open_files()
    rounds: list[dict[str, Any]] = []
    for number in range(1, args.repeat + 1):
        for mode in modes:
            for side in sides:
                print(f"round {number}: {side} ({mode})...", file=sys.stderr, flush=True)
                row = measure(side, mode, args.n, args.latency, args.concurrency)
                rounds.append({"round": number, **row})
    rows = [
        medians([r for r in rounds if r["mode"] == m and r["side"] == s])
        for m in modes
        for s in sides
    ]
    print(
        f"N={args.n}, latency {args.latency:g} s, concurrency {args.concurrency}, "
        f"ideal {rows[0]['ideal_s']:g} s, {os.cpu_count()} CPUs, "
        f"median of {args.repeat} round{'s' if args.repeat > 1 else ''}"
    )
    print(table(rows))
    for line in verdicts(rows):
        print(line)
    path = args.json or BENCH / "results" / "compare_replicate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "parameters": {"n": args.n, "latency_s": args.latency, "concurrency": args.concurrency},
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "rows": rows,
        "rounds": rounds,
        "verdicts": verdicts(rows),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
