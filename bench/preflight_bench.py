"""Time the online pre-flight's input checks on 200,000 distinct inputs; print the figures.

    python bench/preflight_bench.py                 # 200 subjects × 1,000 seeds
    python bench/preflight_bench.py --rows 20       # 20 × 1,000, faster

The schema is shaped like Replicate's (Cog's): seven inputs, two enums behind `allOf`/`$ref`,
integer bounds; each input sets six fields, so 200,000 inputs are 1.2M field checks. What the
pre-flight adds to a run is the checks (`check inputs`) less the plan walk they ride on
(`plan walk`, which the survey and the producers make anyway). Goal (issue 22): +1 s at most.
Wall times on a shared machine are noisy: the process's CPU time is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from batchrun.engine.preflight import check_inputs
from batchrun.planner.expand import iter_plan
from batchrun.spec.load import load_spec

SPEC = """\
batchrun: 1
name: bench
jobs:
  - model: acme/strict-painter
    input:
      prompt: "${{subject}}, variation ${{seed}}"
      seed: ${{seed}}
      aspect_ratio: "16:9"
      output_format: png
      num_outputs: 1
      num_inference_steps: 4
    matrix:
      subject: {{lines: subjects.txt}}
      seed: {{range: [0, {seeds}]}}
"""


def schema() -> dict[str, Any]:
    """A Cog schema like a real text-to-image model's (the sandbox's acme/strict-painter)."""
    enum = {"aspect_ratio": ["1:1", "16:9", "3:2", "2:3", "9:16"], "output_format": ["webp", "png"]}
    inputs: dict[str, Any] = {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
        "seed": {"type": "integer", "title": "Seed", "x-order": 1},
        "num_outputs": {"type": "integer", "minimum": 1, "maximum": 4, "x-order": 2},
        "num_inference_steps": {"type": "integer", "minimum": 1, "maximum": 4, "x-order": 3},
        "go_fast": {"type": "boolean", "default": True, "x-order": 4},
    }
    for name in enum:
        inputs[name] = {"allOf": [{"$ref": f"#/components/schemas/{name}"}], "x-order": 5}
    schemas: dict[str, Any] = {
        "Input": {"type": "object", "title": "Input", "required": ["prompt"], "properties": inputs},
        "Output": {"type": "array", "items": {"type": "string", "format": "uri"}},
    }
    schemas |= {name: {"type": "string", "enum": values} for name, values in enum.items()}
    return {"openapi": "3.0.2", "components": {"schemas": schemas}}


def timed(work: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200, help="subjects (× --seeds)")
    parser.add_argument("--seeds", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        lines = "".join(f"subject {i}\n" for i in range(args.rows))
        (Path(folder) / "subjects.txt").write_text(lines, encoding="utf-8")
        path = Path(folder) / "bench.yaml"
        path.write_text(SPEC.format(seeds=args.seeds), encoding="utf-8")
        spec = load_spec(path)
        job = spec.jobs[0]
        walked, walk_wall, walk_cpu = timed(lambda: sum(1 for _ in iter_plan(spec)))
        found, wall, cpu = timed(lambda: check_inputs(spec, job, schema()))
    checked, issues, notes = found
    assert not issues, issues
    assert not notes, notes
    figures = {
        "inputs planned": walked,
        "inputs checked": checked,
        "plan walk s": round(walk_wall, 2),
        "plan walk CPU s": round(walk_cpu, 2),
        "check inputs s": round(wall, 2),
        "check inputs CPU s": round(cpu, 2),
        "added by the checks s": round(wall - walk_wall, 2),
        "added by the checks CPU s": round(cpu - walk_cpu, 2),
        "load": round(os.getloadavg()[0], 1),
    }
    width = max(map(len, figures))
    for name, value in figures.items():
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        print(f"{name:<{width}}  {shown}")
    json.dump(figures, sys.stdout)
    print()


if __name__ == "__main__":
    main()
