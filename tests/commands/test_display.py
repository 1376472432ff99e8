"""What `run` shows while it works: a bar, plain lines at a steady interval, or nothing."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from runs import run_argv, write_spec

from batchrun.cli import main
from batchrun.engine.collector import Failure, Tally
from batchrun.frontend.progress import (
    BarProgress,
    Counts,
    LinesProgress,
    make_progress,
    progress_line,
)
from batchrun.sandbox import Sandbox


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_progress_line_has_counts_rate_and_time_left() -> None:
    assert progress_line(Counts(0, 40, 0, 0, 8), 0.0) == (
        "batchrun: 0/40 done (0 ok, 0 failed), 8 in flight"
    )
    assert progress_line(Counts(10, 40, 9, 1, 8), 5.0) == (
        "batchrun: 10/40 done (9 ok, 1 failed), 8 in flight; 2.0/s, about 15.0s left"
    )


def test_lines_start_at_once_then_come_on_each_tick() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = LinesProgress(stream=stream, clock=clock, every=3600.0)
    tally = Tally(total=4, in_flight=4)
    progress.start(tally)
    tally.finished["succeeded"] = 2
    tally.in_flight = 2
    progress.update(tally)
    clock.now += 4.0
    progress.tick()
    progress.message("batchrun: the API says slow down (429); creating more slowly")
    progress.close()
    assert stream.getvalue().splitlines() == [
        "batchrun: 0/4 done (0 ok, 0 failed), 4 in flight",
        "batchrun: 2/4 done (2 ok, 0 failed), 2 in flight; 0.5/s, about 4.0s left",
        "batchrun: the API says slow down (429); creating more slowly",
    ]


@pytest.mark.parametrize("verbose", [False, True])
def test_verbose_shows_each_failure_as_it_happens(verbose: bool) -> None:
    stream = io.StringIO()
    progress = LinesProgress(stream=stream, verbose=verbose, clock=Clock(), every=3600.0)
    tally = Tally(total=30)
    progress.start(tally)
    tally.failures.append(Failure("k1", "img", "failed", "CUDA out of memory"))
    tally.failure_count = 1
    progress.update(tally)
    progress.update(tally)  # nothing new: nothing said twice
    tally.failure_count = 3  # the tally lists the first few failures only
    progress.update(tally)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "batchrun: 0/30 done (0 ok, 0 failed), 0 in flight"
    expected = [
        "batchrun: k1  img  failed: CUDA out of memory",
        "batchrun: 2 more failed (3 in all; `batchrun status` lists every one)",
    ]
    assert lines[1:] == (expected if verbose else [])


def test_auto_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert isinstance(make_progress("auto", stream=Terminal()), BarProgress)
    assert isinstance(make_progress("auto", stream=io.StringIO()), LinesProgress)
    assert isinstance(make_progress("lines", stream=Terminal()), LinesProgress)
    quiet = make_progress("lines", quiet=True, stream=io.StringIO())
    assert isinstance(quiet, BarProgress)
    quiet.message("not shown")
    none = make_progress("none", stream=(stream := io.StringIO()))
    none.start(Tally(total=3))
    none.message("a note")
    assert stream.getvalue() == "a note\n"  # `none`: no progress, the notes still show


SPEC = """
batchrun: 1
jobs:
  - id: img
    model: acme/painter
    input: {prompt: "a ${status} prediction ${n}", sandbox_status: "${status}"}
    matrix:
      status: [succeeded, failed]
      n: [1, 2]
"""


def test_run_off_a_terminal_prints_lines_then_the_summary(
    tmp_path: Path,
    sandbox: Sandbox,
    token_in_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(tmp_path, SPEC)
    code = main(run_argv(spec, sandbox, out=tmp_path / "r"))
    assert code == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "batchrun: 0/4 done (0 ok, 0 failed), 0 in flight"
    assert re.fullmatch(r"batchrun: .*/r", lines[1]), lines
    assert "  predictions: failed 2, succeeded 2" in lines


def test_run_verbose_names_the_failure_and_quiet_says_nothing(
    tmp_path: Path,
    sandbox: Sandbox,
    token_in_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(tmp_path, SPEC)
    base = run_argv(spec, sandbox)
    assert main([*base, "--out", str(tmp_path / "v"), "-v", "--progress", "none"]) == 1
    err = capsys.readouterr().err
    failed = [
        line
        for line in err.splitlines()
        if re.fullmatch(r"batchrun: [0-9a-f]{16}  img  failed: sandbox: failed as asked .*", line)
    ]
    assert len(failed) == 2, err
    assert main([*base, "--out", str(tmp_path / "q"), "-q"]) == 1
    assert capsys.readouterr() == ("", "")


def test_run_json_prints_the_summary_on_stdout(
    tmp_path: Path,
    sandbox: Sandbox,
    token_in_env: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = write_spec(tmp_path, SPEC)
    out_dir = tmp_path / "r"
    argv = run_argv(spec, sandbox, "--json", out=out_dir)
    assert main([*argv, "-q"]) == 1
    out, err = capsys.readouterr()
    assert err == ""
    summary = json.loads(out)
    assert summary["finished"] == {"failed": 2, "succeeded": 2}
    assert (summary["ok"], summary["interrupted"], summary["failure_count"]) == (False, False, 2)
    assert summary["run_dir"] == str(out_dir)
    assert summary["requests"]["creates"] == 4
    assert [f["status"] for f in summary["failures"]] == ["failed", "failed"]
