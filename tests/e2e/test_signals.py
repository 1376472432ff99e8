"""SIGTERM at every stretch of `batchrun run`, sent by the child to itself at an exact moment.

A child process patches one function of batchrun to send itself SIGTERM at that point, then runs
the real command line against the sandbox. Wherever it lands, the command ends with exit 130 and
no traceback: before the run and while the summary prints as Ctrl-C would ("batchrun:
interrupted"), inside the run's event loop as a run that was stopped (its summary printed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from runs import TOKEN, write_spec

from batchrun.engine import signals
from batchrun.sandbox import Sandbox

# `where` is patched to send SIGTERM before it runs (`before`) or as its block ends (`in_exit`).
CHILD = """
import contextlib, os, signal, sys
import {module} as target

real = target.{name}

def kill():
    os.kill(os.getpid(), signal.SIGTERM)

def before(*args, **kwargs):
    kill()
    return real(*args, **kwargs)

@contextlib.contextmanager
def in_exit(*args, **kwargs):
    with real(*args, **kwargs) as value:
        yield value
        kill()

target.{name} = {how}
from batchrun.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_child(
    tmp_path: Path, sandbox: Sandbox, module: str, name: str, how: str
) -> tuple[int, str]:
    spec = write_spec(
        tmp_path,
        """
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}", width: 64, height: 64}
            matrix: {i: {range: [0, 3]}}
        """,
    )
    script = textwrap.dedent(CHILD).format(module=module, name=name, how=how)
    args = ["run", str(spec), "--base-url", sandbox.base_url, "--out", str(tmp_path / "run")]
    env = {**os.environ, "REPLICATE_API_TOKEN": TOKEN}
    env.pop("BATCHRUN_DEBUG", None)
    child = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in child.stderr
    return child.returncode, child.stderr


def test_sigterm_before_the_run_ends_the_command_as_ctrl_c_does(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    code, err = run_child(tmp_path, sandbox, "batchrun.commands.run", "load_spec", "before")
    assert (code, err) == (130, "batchrun: interrupted\n")
    assert sandbox.state.snapshot()["creates"] == 0


def test_sigterm_as_the_run_starts_is_handed_to_the_run(tmp_path: Path, sandbox: Sandbox) -> None:
    # Inside the event loop, before the run watches signals: noted, then handed over.
    code, err = run_child(tmp_path, sandbox, "batchrun.engine.runner", "run_async", "before")
    assert code == 130, err
    # Stopped before it looked at the manifest: it says so, never "nothing to do".
    assert (
        "  predictions: none: stopped before the plan was compared with the manifest; "
        "nothing was sent\n"
    ) in err
    assert sandbox.state.snapshot()["creates"] == 0


def test_sigterm_as_the_run_winds_down_marks_it_interrupted(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    # The work is done and the run no longer watches signals; its event loop is still open.
    code, err = run_child(tmp_path, sandbox, "batchrun.engine.runner", "exclusive", "in_exit")
    assert code == 130, err
    assert "\n  manifest: " in err
    assert sandbox.state.snapshot()["creates"] == 3


def test_sigterm_while_the_summary_prints_ends_the_command_as_ctrl_c_does(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    code, err = run_child(tmp_path, sandbox, "batchrun.commands.run", "summary_lines", "before")
    assert code == 130, err
    assert err.endswith("batchrun: interrupted\n"), err
    assert sandbox.state.snapshot()["creates"] == 3


def test_outside_a_command_sigterm_keeps_its_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with signals.sigterm_interrupts():
        assert signal.getsignal(signal.SIGTERM) is not before
        with signals.holding() as late:
            assert late == []
    assert signal.getsignal(signal.SIGTERM) is before
