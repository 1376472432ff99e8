"""The commands that read a run at scale: `status`, `report`, `export`, `verify` and `plan`
against a synthetic manifest of a million keys, each in a child process of its own.

    python bench/manifest_scale.py                      # 1,000,000 keys, every command
    python bench/manifest_scale.py --keys 100000 --only status export-csv
    python bench/manifest_scale.py --keep /tmp/m1m      # build once, keep it, run again later
    python bench/manifest_scale.py --text 200 --only report export-jsonl   # a text per key
    python bench/manifest_scale.py --text 200 --in-row --only report   # ... in a CSV row

The manifest (text outputs: no files to check, so what is measured is reading the journal) is
shaped like a real one: two jobs, priced; 2% of keys failed once and were retried (two lines,
the later one succeeded), 1% failed for good, 0.5% still in flight, 1% made by the sandbox,
and a second journal (a shard) holding 5% of the keys. With `--text N`, every key also has a
variable of its own, a text of N characters (a prompt read from a file, as a dataset's spec
has it): what `report` and `export`, which keep each variable's values, hold grows with it.
With `--in-row` too, that text is a field of a mapping, `row: {prompt, lang}` (a row of a CSV
file, `lang` one of three), whose fields `export` spreads over columns and `report` shows.
Each command's peak RSS comes from `os.wait4`: the `ru_maxrss` of the command or of the worker
it forks to a second core (the first parse past 32 MiB, exports), the larger of the two, not
their sum. So "tree MB" is the sum: the proportional set size (PSS: a page two processes share
counts half in each, so the sum is the memory the two hold together, no page counted twice) of
the command and every process under it, read from /proc every TREE_SAMPLE_S while it runs
(Linux; the peak of the samples, so a peak shorter than a sample may be missed). With its
user + system CPU seconds (both processes) and wall time.

Goals (issue 22): at 1,000,000 keys each of `status`, `report`, `export` and `verify` in at most
300 MB and 20 s, and `plan` in at most 300 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kept import add_keep_and_only, bench_folder, built, mark_built

SPEC = """\
batchrun: 1
name: manifest-scale
base_url: http://127.0.0.1:9
price: {{per_second: 0.0014}}
jobs:
  - id: chat
    model: meta/llama-chat
    input: {{prompt: "question ${{i}} in ${{lang}}", max_tokens: 64}}
    matrix: {{lang: [en, fr], i: {{range: [0, {half}]}}}}
  - id: other
    model: meta/other-chat
    input: {{prompt: "question ${{i}}", max_tokens: 64}}
    matrix: {{i: {{range: [0, {rest}]}}}}
"""
GOAL_MB = 300
TEXT_MARK = ".bench-text"  # the --text a kept folder was built with
GOAL_S = 20.0
STAMP = "2026-01-01T00:00:00.000Z"
# What `--text` fills each key's own text with, after its number.
FILLER = "a prompt of its own for this row, "
LANGS = ("en", "fr", "de")  # a CSV row's second field (`--in-row`)
TREE_SAMPLE_S = 0.02  # how often the process tree's PSS is summed: often, and cheap to read
REAL = {"url": "https://api.replicate.com", "sandbox": False}
SANDBOX = {"url": "http://127.0.0.1:8765", "sandbox": True}

# Each command as the command line takes it: {spec}, {run}, {out} are filled in.
COMMANDS: dict[str, list[str]] = {
    "status": ["status", "{spec}"],
    "status-json": ["status", "{spec}", "--json"],
    "status-csv": ["status", "{spec}", "--csv", "{out}/status.csv"],
    "report": ["report", "{spec}", "--output", "{out}/report.html"],
    "export-jsonl": ["export", "{spec}", "--format", "jsonl", "--to", "{out}/rows.jsonl"],
    "export-csv": ["export", "{spec}", "--format", "csv", "--to", "{out}/rows.csv"],
    "export-hf": ["export", "{spec}", "--format", "hf", "--to", "{out}/hf", "--force"],
    "verify": ["verify", "{spec}", "--allow-sandbox"],
    "plan": ["plan", "{spec}"],
}


def build(folder: Path, keys: int, text: int = 0, in_row: bool = False) -> float:
    """The spec and a run folder whose manifests record every planned key (see the docstring)."""
    from batchrun.manifest.records import Record
    from batchrun.manifest.writer import new_header
    from batchrun.planner.expand import iter_plan
    from batchrun.spec.load import load_spec

    began = time.perf_counter()
    half = keys // 4
    (folder / "spec.yaml").write_text(SPEC.format(half=half, rest=keys - 2 * half))
    spec = load_spec(folder / "spec.yaml")
    run = spec.output
    run.mkdir(parents=True, exist_ok=True)
    header = new_header(spec_path=spec.path, spec_sha256=spec.sha256, name=spec.name, shard=None)
    shard = new_header(spec_path=spec.path, spec_sha256=spec.sha256, name=spec.name, shard=(2, 2))
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    written = 1_000_000_000
    with (
        (run / "manifest.jsonl").open("w", encoding="utf-8") as main,
        (run / "manifest.shard-2-of-2.jsonl").open("w", encoding="utf-8") as other,
    ):
        main.write(dumps(header) + "\n")
        other.write(dumps(shard) + "\n")
        retried = []
        for number, planned in enumerate(iter_plan(spec)):
            written += 1
            out = other if number % 20 == 7 else main
            done = (
                Record.planned(planned, "succeeded")
                .replace(
                    prediction_id=f"{number:026x}",
                    version="5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
                    output=f"The answer to question {number} is a short paragraph of text.",
                    metrics={"predict_time": 0.8, "total_time": 0.9},
                    created_at=STAMP,
                    started_at=STAMP,
                    completed_at=STAMP,
                    attempts=1,
                    request_sha256=f"{number:064x}",
                    cost=0.00112,
                    price={"per_second": 0.0014},
                )
                .to_json()
            )
            done["api"] = SANDBOX if number % 100 == 3 else REAL
            if text:  # a text of its own per key, `text` characters long
                note = f"{number} {FILLER * (text // len(FILLER) + 1)}"[:text]
                if in_row:
                    done["vars"]["row"] = {"prompt": note, "lang": LANGS[number % len(LANGS)]}
                else:
                    done["vars"]["note"] = note
            if number % 100 == 5:  # failed for good
                done.update(status="failed", error="CUDA out of memory", output=None)
            elif number % 200 == 9:  # still running when the run stopped
                done.update(status="processing", output=None, completed_at=None)
            elif number % 50 == 1:  # failed once, retried below
                failed = {**done, "status": "failed", "error": "timeout", "output": None}
                failed["written_ns"] = written
                out.write(dumps(failed) + "\n")
                retried.append(done)
                continue
            done["written_ns"] = written
            out.write(dumps(done) + "\n")
        for done in retried:  # the retries, at the end of the journal
            written += 1
            done.update(attempts=2, cost_before=0.0005, written_ns=written)
            main.write(dumps(done) + "\n")
    return time.perf_counter() - began


def measure(folder: Path, name: str) -> dict[str, Any]:
    """One command in a child process: its exit code, wall and CPU seconds, peak RSS."""
    out = folder / "out"
    out.mkdir(exist_ok=True)
    fill = {"spec": str(folder / "spec.yaml"), "out": str(out)}
    argv = [arg.format(**fill) for arg in COMMANDS[name]]
    load = os.getloadavg()[0]
    began = time.perf_counter()
    with open(out / f"{name}.stdout", "wb") as stdout, open(out / f"{name}.stderr", "wb") as err:
        child = subprocess.Popen(
            [sys.executable, "-m", "batchrun", *argv], stdout=stdout, stderr=err, cwd=folder
        )
        tree = _TreeRss(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        tree.stop()
    wall = time.perf_counter() - began
    return {
        "command": name,
        "argv": "batchrun " + " ".join(COMMANDS[name]),
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "tree_mb": round(tree.peak / 2**20, 1) if tree.peak else None,
        "load_before": round(load, 2),
    }


class _TreeRss:
    """The peak, over samples every TREE_SAMPLE_S, of the summed PSS of a process and the
    processes under it (0 where /proc cannot tell: not Linux)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(TREE_SAMPLE_S):
            self.peak = max(self.peak, sum(map(_pss, _tree(self.pid))))


def _tree(pid: int) -> list[int]:
    """`pid` and every process under it, from /proc's children lists."""
    found, todo = [], [pid]
    while todo:
        at = todo.pop()
        found.append(at)
        for task in Path(f"/proc/{at}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                todo.extend(int(child) for child in task.read_text().split())
    return found


def _pss(pid: int) -> int:
    """A process's proportional set size now, in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, IndexError, ValueError):
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    add_keep_and_only(parser, list(COMMANDS))
    parser.add_argument("--json", type=Path, help="where to write the figures")
    parser.add_argument(
        "--text", type=int, default=0, metavar="N", help="give each key a text of N characters"
    )
    parser.add_argument(
        "--in-row", action="store_true", help="with --text: the text is a field of a CSV row"
    )
    args = parser.parse_args()
    with bench_folder(args.keep, "manifest-scale-") as folder:
        if args.in_row and not args.text:
            parser.error("--in-row needs --text")
        texts, shape = folder / TEXT_MARK, f"{args.text}{' in a row' if args.in_row else ''}"
        if not built(folder, args.keys):
            print(f"writing a manifest of {args.keys:,} keys...", file=sys.stderr, flush=True)
            print(f"  {build(folder, args.keys, args.text, args.in_row):.1f} s", file=sys.stderr)
            texts.write_text(f"{shape}\n")
            mark_built(folder, args.keys)
        elif (texts.read_text().strip() if texts.exists() else "0") != shape:
            raise SystemExit(f"{folder} was built with another --text or --in-row")
        runs = folder / "runs"
        size = sum(p.stat().st_size for p in runs.rglob("manifest*.jsonl"))
        rows = []
        for name in args.only or COMMANDS:
            print(f"{name}...", file=sys.stderr, flush=True)
            rows.append(measure(folder, name))
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    texts = f", a text of {args.text} characters each" if args.text else ""
    texts += " in a CSV row" if args.in_row else ""
    goal = f"goal ≤ {GOAL_MB} MB, ≤ {GOAL_S} s"
    print(f"{args.keys:,} keys{texts}, manifests {size / 2**20:.0f} MB; {goal}")
    print("| command | exit | wall s | CPU s | peak RSS MB | tree MB | load |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| `{r['argv']}` | {r['exit']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} "
            f"| {r['peak_rss_mb']:.0f} | {r['tree_mb'] or '-'} | {r['load_before']:.2f} |"
        )
    if args.json:
        figures = {"keys": args.keys, "text": args.text, "in_row": args.in_row, "rows": rows}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
