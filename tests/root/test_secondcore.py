"""A worker forked to a second core (`batchrun/secondcore.py`) never outlives its command: one
SIGKILLed (or killed by the OOM killer: no cleanup of its own runs) takes its worker with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchrun import secondcore
from batchrun.manifest.records import WRITTEN, Record
from batchrun.manifest.writer import encode_line, new_header

# How long a worker killed with its command may take to be gone: the kernel kills it as the
# command exits; this only bounds a machine busy with other work.
GONE_WITHIN = 10.0
POLL = 0.01

# A worker that works far longer than the test waits (as a worker of a million lines works on
# for seconds), in a child that never ends on its own: the test SIGKILLs it once the worker is
# at work, its pid in the file $WORKER_PID.
FORKED = """
import os, sys, time
from batchrun import secondcore

def work():
    with open(os.environ["WORKER_PID"] + ".part", "w") as out:
        out.write(str(os.getpid()))
    os.replace(os.environ["WORKER_PID"] + ".part", os.environ["WORKER_PID"])
    time.sleep(120)

with secondcore.forked(work) as worker:
    assert worker is not None
    time.sleep(120)
"""

# `batchrun status RUN` reading its table on two cores however few its lines, each process
# stuck in its half (the worker once it has said its pid, in $WORKER_PID), until the test
# SIGKILLs the command.
STATUS = """
import os, sys, time
from batchrun import secondcore
from batchrun.manifest import twoparse

twoparse.TWO_CORES_FROM = 1
secondcore.available = lambda: True
command = os.getpid()

def rows_from(*args):
    if os.getpid() != command:
        with open(os.environ["WORKER_PID"] + ".part", "w") as out:
            out.write(str(os.getpid()))
        os.replace(os.environ["WORKER_PID"] + ".part", os.environ["WORKER_PID"])
    time.sleep(120)

twoparse.rows_from = rows_from
from batchrun.cli import main
sys.exit(main(sys.argv[1:]))
"""


def gone(pid: int) -> bool:
    """Whether process `pid` has ended: no such process, or a zombie its new parent has not
    reaped (the machine's first process may reap none)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] in ("Z", "X")


def gone_in_time(pid: int) -> bool:
    """Whether process `pid` is gone within GONE_WITHIN seconds, looked at every POLL."""
    deadline = time.monotonic() + GONE_WITHIN
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


@pytest.fixture
def command(tmp_path: Path) -> Iterator[tuple[list[subprocess.Popen[bytes]], Path]]:
    """(where the test puts the child it starts, the file its worker's pid appears in); the
    child and its worker killed at the end, whatever happened (on the code before, the worker
    would sleep on)."""
    started: list[subprocess.Popen[bytes]] = []
    said = tmp_path / "worker.pid"
    yield started, said
    for child in started:
        child.kill()
        child.wait()
    if said.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(said.read_text()), signal.SIGKILL)


def start(
    started: list[subprocess.Popen[bytes]], said: Path, script: str, *args: str
) -> tuple[subprocess.Popen[bytes], int]:
    """`script` started with `args` (a session of its own, as a command run from a shell), and
    its worker's pid once the worker is at work."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "WORKER_PID": str(said)},
        start_new_session=True,
    )
    started.append(child)
    deadline = time.monotonic() + 60
    while not said.exists():
        assert child.poll() is None, child.communicate()[1].decode()
        assert time.monotonic() < deadline, "the worker never began"
        time.sleep(POLL)
    return child, int(said.read_text())


def killed(child: subprocess.Popen[bytes]) -> None:
    """`child` SIGKILLed, as the OOM killer kills: no cleanup of its own runs."""
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL


def test_a_worker_dies_with_its_command(
    command: tuple[list[subprocess.Popen[bytes]], Path],
) -> None:
    child, worker = start(*command, FORKED)
    assert not gone(worker)
    killed(child)
    assert gone_in_time(worker)


def run_folder(run: Path, keys: int) -> None:
    """A run folder of one journal of `keys` records."""
    header = new_header(spec_path=run / "s.yaml", spec_sha256="ab" * 32, name="x", shard=None)
    with (run / "manifest.jsonl").open("wb") as out:
        out.write(encode_line(header))
        for n in range(1, keys + 1):
            line = Record(
                key=f"{n:016x}",
                job="flux",
                target={"model": "acme/flux"},
                input={"prompt": f"p-{n}"},
                vars={"n": n},
                repeat=0,
                status="succeeded",
            ).to_json()
            out.write(encode_line({**line, WRITTEN: 10**18 + n}))


def test_a_killed_command_leaves_no_worker_and_no_spool(
    tmp_path: Path, command: tuple[list[subprocess.Popen[bytes]], Path]
) -> None:
    """The worker of a first read sends its rows through a file in the run folder, which has
    no name (nothing for the next command to find or clean): the space it holds is the
    system's again once the last process that holds it, the worker, is gone with the
    command."""
    run = tmp_path / "run"
    run.mkdir()
    run_folder(run, 200)
    before = sorted(os.listdir(run))
    child, worker = start(*command, STATUS, "status", str(run))
    held = [os.readlink(fd) for fd in Path(f"/proc/{worker}/fd").iterdir()]
    (spool,) = [name for name in held if name.startswith(f"{run}/") and "manifest" not in name]
    assert spool.endswith(" (deleted)")  # in the run folder, and nameless
    killed(child)
    assert gone_in_time(worker)
    assert sorted(os.listdir(run)) == before


def test_a_worker_whose_command_is_gone_does_no_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command may end between the fork and the worker's asking to die with it: the
    worker, then another's child, does nothing (exit 1), as it could never be stopped."""
    done = tmp_path / "done"
    monkeypatch.setattr(os, "getpid", lambda: 1)  # a parent the worker is not the child of
    with secondcore.forked(done.touch) as worker:
        assert worker is not None
        assert worker.wait() is False
    assert not done.exists()
    monkeypatch.undo()
    with secondcore.forked(done.touch) as worker:  # its own parent: it works
        assert worker is not None
        assert worker.wait() is True
    assert done.exists()


def test_no_worker_on_one_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command given one core (`taskset -c 0`) forks no worker: both halves would share it."""
    monkeypatch.setattr(secondcore.threading, "active_count", lambda: 1)  # xdist has threads
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert secondcore.available() is False
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    assert secondcore.available() is True
