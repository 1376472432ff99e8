"""Work put on a second core in a test, whatever the machine, and the workers forked, counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from runs import sigint_at_start

from batchrun import secondcore


def forks_recorded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fork `batchrun.secondcore` asks for allowed (each caller lowers its own threshold:
    how many rows or bytes a worker takes), and the pid of each worker forked, in order."""
    monkeypatch.setattr(secondcore, "available", lambda: True)
    forked: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return forked


def stopped_by_ctrl_c(script: str, *args: str) -> None:
    """`script` (Python that sends its own process group Ctrl-C at some step of a worker's
    work, then runs the command line `args`) run as a terminal's foreground job: its own process
    group, SIGINT handled as by default. It stops as an interrupted command does (exit 130,
    nothing on stdout, "batchrun: interrupted"), and nothing of its group is left: the worker
    it forked is gone too."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=sigint_at_start(signal.SIG_DFL),
    )
    out, err = child.communicate(timeout=60)
    assert (child.returncode, out, err) == (130, "", "batchrun: interrupted\n")
    with pytest.raises(ProcessLookupError):
        os.killpg(child.pid, 0)
