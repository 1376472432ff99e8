"""Scale: 10,000 predictions at concurrency 1,000, and resuming over a 1,000,000-line manifest.

    python bench/scale.py                      # both parts
    python bench/scale.py --part run           # only the runs against the sandbox
    python bench/scale.py --part resume --lines 200000 --json bench/results/scale.json

Part `run`: `batchrun.engine.runner.run` against `batchrun sandbox` (its own process), each run in
its own child process so CPU and peak RSS are that run's alone. Two runs of the same shape, ten
waves of predictions of 0.2 s, one ten times the other (1,000 at concurrency 100, 10,000 at
1,000), show whether wall time and memory stay proportionate. Predictions of 0.2 s end faster
than one process can start them, so a third run of 10,000 at 1,000 uses 2 s predictions to
really hold 1,000 in flight. Each run folder is then run again (nothing left to do) to time
resume with real files to check.

    max in flight the most creates the sandbox held open at once (Prefer: wait)
    wall s        the run, downloads included;  ideal = waves × latency;  ratio = wall / ideal
    wall ms/pred  wall time per prediction: proportionate means the same for both sizes
    CPU ms/pred   the child's user + system CPU per prediction
    batchrun CPU  the child's CPU time / wall time (100% = one core busy all along)
    sandbox CPU   the same for the sandbox process: a 2-core machine cannot run both flat out
    peak RSS MB   the child's largest resident set
    rerun s       the same spec again over the finished run folder: survey (every file hashed),
                  nothing to create

Part `resume`: a synthetic manifest of N lines (one succeeded key each, text outputs, so no files
to check) for a spec that plans exactly those N keys, then, each in a child process:
    load_index     the runner's resume load (`batchrun.manifest.table.load_index`)
    survey         load_index + `batchrun.engine.survey.survey` (what `run` does before creating)
    plan CLI       `batchrun plan SPEC --out RUN` end to end: the comparison a user sees
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
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

BENCH = Path(__file__).resolve().parent
LATENCY = 0.2

RUN_SPEC = """\
batchrun: 1
concurrency: {concurrency}
rate: 100000000/min
requests: 100000000/min
jobs:
  - model: acme/painter
    input: {{prompt: "scale ${{i}}", width: 64, height: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""

TEXT_SPEC = """\
batchrun: 1
jobs:
  - model: meta/llama-chat
    input: {{prompt: "question ${{i}}", max_tokens: 64}}
    matrix: {{i: {{range: [0, {n}]}}}}
"""


def rss_mb() -> float:
    """This process's peak resident set so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- children ------------------------------------------------------------------------------


def child_run(base_url: str, folder: Path, n: int, concurrency: int) -> dict[str, Any]:
    """One run of N predictions into `folder` (kept for the resume that follows)."""
    from batchrun.engine.runner import RunOptions, run
    from batchrun.spec.load import load_spec

    spec_path = folder / "scale.yaml"
    spec_path.write_text(RUN_SPEC.format(n=n, concurrency=concurrency))
    spec = load_spec(spec_path)
    baseline = rss_mb()
    before = cpu_s()
    began = time.perf_counter()
    summary = run(spec, RunOptions(base_url=base_url, token="bench", out=folder / "run"))
    wall = time.perf_counter() - began
    return {
        "ok": summary.ok,
        "succeeded": summary.tally.succeeded,
        "skipped": summary.tally.skipped,
        "creates": summary.client.creates,
        "wall_s": wall,
        "cpu_s": cpu_s() - before,
        "baseline_rss_mb": baseline,
        "peak_rss_mb": rss_mb(),
    }


def child_resume(folder: Path, what: str) -> dict[str, Any]:
    """Time the resume load (and the survey, or `batchrun plan`) over `folder`/run."""
    from batchrun.cli import main as batchrun
    from batchrun.engine.choices import RunChoices
    from batchrun.engine.survey import survey
    from batchrun.manifest.table import load_index
    from batchrun.spec.load import load_spec

    if what == "plan":
        baseline = rss_mb()
        began = time.perf_counter()
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            code = batchrun(["plan", str(folder / "spec.yaml"), "--out", str(folder / "run")])
        return {
            "code": code,
            "plan_s": time.perf_counter() - began,
            "baseline_rss_mb": baseline,
            "peak_rss_mb": rss_mb(),
            "says": shown.getvalue().strip().splitlines(),
        }
    spec = load_spec(folder / "spec.yaml")
    baseline = rss_mb()
    began = time.perf_counter()
    index = load_index(folder / "run")
    loaded = time.perf_counter() - began
    out: dict[str, Any] = {"keys": len(index.states), "load_s": loaded, "baseline_rss_mb": baseline}
    out["load_rss_mb"] = rss_mb()
    if what == "survey":
        found = survey(spec, index.states, folder / "run", RunChoices())
        out["survey_s"] = time.perf_counter() - began - loaded
        out["done"] = found.done
        out["work"] = found.total_work
    out["peak_rss_mb"] = rss_mb()
    return out


def in_child(*argv: str) -> dict[str, Any]:
    """Run this script with `--child ARGV` and return the JSON it prints."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *argv]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {' '.join(argv)} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- part run ------------------------------------------------------------------------------


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def part_run(sizes: list[tuple[int, int, float]]) -> list[dict[str, Any]]:
    rows = []
    for n, concurrency, latency in sizes:
        process, base = start_sandbox(latency)
        try:
            with tempfile.TemporaryDirectory(prefix="scale-") as name:
                what = f"{n:,} at concurrency {concurrency:,}, {latency:g} s"
                print(f"run: {what}...", file=sys.stderr, flush=True)
                sandbox_before = process_cpu_s(process.pid)
                first = in_child("run", base, name, str(n), str(concurrency))
                sandbox_cpu = process_cpu_s(process.pid) - sandbox_before
                again = in_child("run", base, name, str(n), str(concurrency))
            stats = httpx.get(f"{base}/_sandbox/stats").json()
        finally:
            process.terminate()
            process.wait(10)
        if not first["ok"] or again["creates"] != 0:
            raise SystemExit(f"the {n} run did not succeed cleanly: {first}, then {again}")
        ideal = math.ceil(n / concurrency) * latency
        rows.append(
            {
                "predictions": n,
                "concurrency": concurrency,
                "latency_s": latency,
                "wall_s": round(first["wall_s"], 2),
                "ideal_s": round(ideal, 2),
                "ratio": round(first["wall_s"] / ideal, 2),
                "wall_ms_per_prediction": round(first["wall_s"] * 1000 / n, 3),
                "cpu_ms_per_prediction": round(first["cpu_s"] * 1000 / n, 2),
                "batchrun_cpu_share": round(first["cpu_s"] / first["wall_s"], 2),
                "sandbox_cpu_share": round(sandbox_cpu / first["wall_s"], 2),
                "peak_rss_mb": round(first["peak_rss_mb"], 1),
                "baseline_rss_mb": round(first["baseline_rss_mb"], 1),
                "max_held_by_sandbox": stats["max_held"],
                "rerun_s": round(again["wall_s"], 2),
                "rerun_peak_rss_mb": round(again["peak_rss_mb"], 1),
                "load_before": round(os.getloadavg()[0], 2),
            }
        )
    return rows


# --- part resume ---------------------------------------------------------------------------


def write_manifest(folder: Path, lines: int) -> float:
    """A spec of `lines` text predictions and a manifest with each of them succeeded."""
    from batchrun.manifest.records import Record
    from batchrun.manifest.writer import new_header
    from batchrun.planner.expand import iter_plan
    from batchrun.spec.load import load_spec

    spec_path = folder / "spec.yaml"
    spec_path.write_text(TEXT_SPEC.format(n=lines))
    spec = load_spec(spec_path)
    (folder / "run").mkdir()
    began = time.perf_counter()
    header = new_header(spec_path=spec.path, spec_sha256=spec.sha256, name=spec.name, shard=None)
    stamp = "2026-01-01T00:00:00.000Z"
    with (folder / "run" / "manifest.jsonl").open("w") as out:
        out.write(json.dumps(header, separators=(",", ":")) + "\n")
        for number, planned in enumerate(iter_plan(spec)):
            record = Record.planned(planned, "succeeded").replace(
                prediction_id=f"{number:026x}",
                version="hidden",
                output=f"The answer to question {number} is a short paragraph of text.",
                metrics={"predict_time": 0.8, "total_time": 0.9},
                created_at=stamp,
                started_at=stamp,
                completed_at=stamp,
                attempts=1,
                request_sha256=f"{number:064x}",
            )
            out.write(json.dumps(record.to_json(), separators=(",", ":")) + "\n")
    return time.perf_counter() - began


def part_resume(lines: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="resume-") as name:
        folder = Path(name)
        print(f"resume: writing a {lines:,}-line manifest...", file=sys.stderr, flush=True)
        written = write_manifest(folder, lines)
        size = (folder / "run" / "manifest.jsonl").stat().st_size
        print("resume: load_index, survey, plan...", file=sys.stderr, flush=True)
        load = in_child("resume", name, "load")
        both = in_child("resume", name, "survey")
        plan = in_child("resume", name, "plan")
    if plan["code"] != 0 or load["keys"] != lines or both["done"] != lines:
        raise SystemExit(f"resume figures are off: {load}, {both}, {plan}")
    return {
        "lines": lines,
        "manifest_mb": round(size / 2**20, 1),
        "write_s": round(written, 1),
        "load_index_s": round(load["load_s"], 2),
        "load_index_peak_rss_mb": round(load["peak_rss_mb"], 1),
        "load_index_bytes_per_key": round(
            (load["peak_rss_mb"] - load["baseline_rss_mb"]) * 2**20 / lines
        ),
        "survey_s": round(both["survey_s"], 2),
        "load_and_survey_s": round(both["load_s"] + both["survey_s"], 2),
        "survey_peak_rss_mb": round(both["peak_rss_mb"], 1),
        "plan_cli_s": round(plan["plan_s"], 2),
        "plan_cli_peak_rss_mb": round(plan["peak_rss_mb"], 1),
        "plan_says": plan["says"],
        "load_before": round(os.getloadavg()[0], 2),
    }


def markdown(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def print_tables(runs: list[dict[str, Any]], resume: dict[str, Any] | None) -> None:
    if runs:
        head = ["predictions", "concurrency", "latency s", "max in flight", "wall s", "ideal s"]
        head += ["ratio", "wall ms/pred", "CPU ms/pred", "batchrun CPU", "sandbox CPU"]
        head += ["peak RSS MB", "rerun s"]
        rows = [
            [
                f"{r['predictions']:,}",
                f"{r['concurrency']:,}",
                f"{r['latency_s']:g}",
                f"{r['max_held_by_sandbox']:,}",
                f"{r['wall_s']:.2f}",
                f"{r['ideal_s']:.1f}",
                f"{r['ratio']:.2f}",
                f"{r['wall_ms_per_prediction']:.2f}",
                f"{r['cpu_ms_per_prediction']:.2f}",
                f"{r['batchrun_cpu_share']:.0%}",
                f"{r['sandbox_cpu_share']:.0%}",
                f"{r['peak_rss_mb']:.1f}",
                f"{r['rerun_s']:.2f}",
            ]
            for r in runs
        ]
        print(markdown(head, rows))
        small, large = runs[0], runs[-1]
        extra = large["max_held_by_sandbox"] - small["max_held_by_sandbox"]
        if extra > 0:
            growth = (large["peak_rss_mb"] - small["peak_rss_mb"]) * 1024 / extra
            print(f"peak RSS grows {growth:.1f} KB per extra prediction in flight")
    if resume:
        r = resume
        head = ["manifest lines", "size MB", "load_index s", "peak RSS MB", "load + survey s"]
        head += ["peak RSS MB", "plan CLI s", "peak RSS MB"]
        row = [
            f"{r['lines']:,}",
            f"{r['manifest_mb']}",
            f"{r['load_index_s']:.2f}",
            f"{r['load_index_peak_rss_mb']:.0f}",
            f"{r['load_and_survey_s']:.2f}",
            f"{r['survey_peak_rss_mb']:.0f}",
            f"{r['plan_cli_s']:.2f}",
            f"{r['plan_cli_peak_rss_mb']:.0f}",
        ]
        print()
        print(markdown(head, [row]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("run", "resume", "both"), default="both")
    parser.add_argument("--n", type=int, default=10_000, help="predictions of the large run")
    parser.add_argument("--concurrency", type=int, default=1_000, help="of the large run")
    parser.add_argument("--lines", type=int, default=1_000_000, help="of the synthetic manifest")
    parser.add_argument(
        "--held-latency",
        type=float,
        default=2.0,
        help="latency of a third run, long enough to hold `concurrency` in flight (0: none)",
    )
    parser.add_argument("--json", type=Path, help="where to write the figures")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_open_files()
    if args.child:
        kind, *rest = args.child
        if kind == "run":
            base, folder, n, concurrency = rest
            figures = child_run(base, Path(folder), int(n), int(concurrency))
        else:
            figures = child_resume(Path(rest[0]), rest[1])
        print(json.dumps(figures))
        return 0
    runs: list[dict[str, Any]] = []
    resume: dict[str, Any] | None = None
    if args.part in ("run", "both"):
        small = (args.n // 10, max(1, args.concurrency // 10), LATENCY)
        sizes = [small, (args.n, args.concurrency, LATENCY)]
        if args.held_latency:
            sizes.append((args.n, args.concurrency, args.held_latency))
        runs = part_run(sizes)
    if args.part in ("resume", "both"):
        resume = part_resume(args.lines)
    print_tables(runs, resume)
    path = args.json or BENCH / "results" / "scale.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"runs": runs, "resume": resume, "cpus": os.cpu_count()}
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
