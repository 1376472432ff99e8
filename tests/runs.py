"""Helpers for end-to-end tests: write specs, run them against a sandbox (in this process or in a
child `batchrun run`), wait for what a run does, and read what it left."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batchrun.engine.runner import Progress, RunOptions, RunSummary, run
from batchrun.manifest.reader import load_records
from batchrun.manifest.records import Record
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec
from batchrun.spec.rate import Rate

TOKEN = "r8_e2e_test_token_0123456789abcdef"
# Seconds each sandbox prediction takes in tests (the `sandbox` and `make_sandbox` fixtures'
# default): long enough that a run has predictions in flight, short enough not to wait on.
TEST_LATENCY = 0.05

# The fixtures of tests/conftest.py that are functions, for annotations.
RunCli = Callable[..., tuple[int, str, str]]  # run_cli(*argv) -> (exit code, stdout, stderr)
Git = Callable[..., str]  # git(repo, *args) -> stdout
PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every whole PNG
# A create rate no test reaches (`run_spec`'s default): a run of a few hundred predictions then
# takes as long as the sandbox takes to answer, not the 20 s that the default 600/min (10
# creates a second) would hold 200 creates back. Only for tests that do not look at the rate
# or at how the run paced its creates.
UNTHROTTLED = Rate.parse("100000/min")


def write_spec(
    folder: Path,
    body: str,
    name: str = "spec.yaml",
    *,
    files: dict[str, str] | None = None,
    as_is: bool = False,
) -> Path:
    """Write a spec file (dedented, unless `as_is`) and the value `files` it names (by path
    relative to `folder`); return the spec's path."""
    for relative, content in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(content, encoding="utf-8")
    path = folder / name
    path.write_text(body if as_is else textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def painter_spec(
    folder: Path,
    keys: int,
    *,
    concurrency: int | None = None,
    rate: str | None = None,
    requests: str | None = None,
    side: int = 64,
    extra: str = "",
) -> Path:
    """A spec of `keys` acme/painter predictions of `side`-pixel images (`i` from 0 to keys - 1
    in the prompt), written as `folder/spec.yaml`: the spec the crash, fault and rate tests
    run. `concurrency`, `rate` and `requests` are set at its top when given; `extra` adds input
    fields (`, note: "..."`)."""
    top = "".join(
        f"{name}: {value}\n"
        for name, value in (("concurrency", concurrency), ("rate", rate), ("requests", requests))
        if value is not None
    )
    fields = f'prompt: "p${{i}}", width: {side}, height: {side}{extra}'
    return write_spec(
        folder,
        f"batchrun: 1\n{top}jobs:\n  - model: acme/painter\n    input: {{{fields}}}\n"
        f"    matrix: {{i: {{range: [0, {keys}]}}}}\n",
        as_is=True,
    )


def run_argv(spec: Path, sandbox: Sandbox, *extra: str, out: Path | None = None) -> list[str]:
    """`run SPEC --base-url SANDBOX [--out OUT] EXTRA...`: a run of `spec` against `sandbox`, as
    `run_cli` and `main` take it (and `start`, in a child)."""
    folder = ["--out", str(out)] if out is not None else []
    return ["run", str(spec), "--base-url", sandbox.base_url, *folder, *extra]


def run_spec(
    spec_path: Path, sandbox: Sandbox, progress: Progress | None = None, **options: Any
) -> RunSummary:
    """Run a spec against `sandbox` through the library, into `<spec folder>/run`.

    Creates go at `UNTHROTTLED` unless the test says `rate=` (`rate=None`: the spec's own rate,
    600/min unless it sets one): the default's 10 creates a second held a run of 20 keys back
    for 2 s, and most tests run several. Tests of pacing give their rate.

    The run is told whether it is on the sandbox (it is unless the sandbox plays a real API,
    `announce=False`), as `--sandbox` tells it: it sends no request to find out (the command
    line's runs by `--base-url` ask, see test_provenance.py), so a test's requests, and the
    sandbox's seeded faults, are the run's own.
    """
    spec = load_spec(spec_path)
    options.setdefault("out", spec_path.parent / "run")
    options.setdefault("rate", UNTHROTTLED)
    options.setdefault("sandbox", sandbox.state.config.announce)
    return run(
        spec, RunOptions(base_url=sandbox.base_url, token=TOKEN, **options), progress=progress
    )


def records(run_dir: Path) -> dict[str, Record]:
    """The last record of every key in a run folder."""
    return load_records(run_dir)[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_files_intact(run_dir: Path) -> int:
    """Every recorded file is in place with its sha256, and no .part file is left; the count."""
    count = 0
    for record in records(run_dir).values():
        for file in record.files:
            path = run_dir / file.path
            assert path.exists(), f"{file.path} of {record.key} is missing"
            assert sha256(path) == file.sha256, f"{file.path} is torn or changed"
            assert path.stat().st_size == file.bytes
            count += 1
    leftovers = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*.part"))
    assert leftovers == []
    return count


def start(
    spec: Path,
    sandbox: Sandbox,
    *extra: str,
    out: Path | None = None,
    quiet: bool = True,
    sigint: signal.Handlers = signal.SIG_DFL,
) -> subprocess.Popen[str]:
    """`batchrun run SPEC` against the sandbox in a child process (stderr captured), started
    with SIGINT as `sigint` says: by default as a terminal's foreground job has it."""
    env = {**os.environ, "REPLICATE_API_TOKEN": TOKEN}
    env.pop("BATCHRUN_DEBUG", None)
    argv = run_argv(
        spec, sandbox, *(["--quiet"] if quiet else []), *extra, out=out or spec.parent / "run"
    )
    return subprocess.Popen(
        [sys.executable, "-m", "batchrun", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_at_start(sigint),
    )


def sigint_at_start(handling: signal.Handlers) -> Callable[[], None]:
    """A child's `preexec_fn`: SIGINT as `handling` says when it starts, whatever this process
    has. A test run started in the background by a shell without job control (`pytest &` in a
    script) has SIGINT ignored and would hand that on; batchrun keeps an ignored SIGINT ignored."""
    return lambda: signal.signal(signal.SIGINT, handling)


def finish(child: subprocess.Popen[str], timeout: float = 60.0) -> tuple[int, str]:
    """Wait for a child run; its exit code and what it said on stderr."""
    _, err = child.communicate(timeout=timeout)
    return child.returncode, err


def downloading(run_dir: Path) -> bool:
    """Whether an output file is being downloaded into `run_dir` right now.

    An output's `.part` only: the pre-flight's record (`preflight.json.part`) is written before
    the first create, and a signal sent when it shows stops a run that has created nothing.
    """
    return any(run_dir.rglob(".*.png.*.part"))  # safefs.temporary_for: `.NAME.<hex>.part`


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def manifest_lines(run_dir: Path) -> list[dict[str, object]]:
    """Every whole record line of the run's manifest (a torn last line is left out)."""
    path = run_dir / "manifest.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines(keepends=True)[1:]:
        if line.endswith(b"\n"):
            out.append(json.loads(line))
    return out


def ids_recorded(run_dir: Path) -> int:
    """How many distinct prediction ids the manifest knows so far."""
    return len({line["prediction_id"] for line in manifest_lines(run_dir) if line["prediction_id"]})


def count_walks(monkeypatch: Any) -> list[object]:
    """Count the walks of the plan from here on: each call of `iter_plan` by the planner's
    `sample`, which every walk of a selection goes through."""
    from batchrun.planner import sample

    walks: list[object] = []
    walk = sample.iter_plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        walks.append(args)
        return walk(*args, **kwargs)

    monkeypatch.setattr(sample, "iter_plan", counted)
    return walks
