"""Work on a second core: a forked worker process, and the one set of rules it is forked by.

Export writes half its rows in a worker (`readout/export/twocores.py`), and the table's first
read parses half its journal lines in one (`manifest/twoparse.py`). Both fork through `forked`:

    if secondcore.available():
        with secondcore.forked(lambda: work_of_the_worker()) as worker:
            if worker is None: ...          # no process to spare: this one does it all
            ...this process's half...
            done = worker.wait()            # True: the worker's work returned
        # here the worker has ended, whatever happened (Ctrl-C too)

The rules: only where the system forks (Linux), with a second core, and with no other thread
(a thread holding a lock at the fork would leave it held in the worker forever). Ctrl-C and
SIGTERM are held across the fork, so each process takes them only where it handles them: the
worker in its work (it then ends), this one in the `with`, which kills and reaps its worker on
any error. The worker is looked at with them held, and marked reaped before they are taken, so
a Ctrl-C never kills a process id no longer the worker's. The worker never returns to the
command: it ends with `os._exit` (0 when its work returned), whatever happens.

A command that dies without its cleanup (SIGKILL, the OOM killer) takes its worker with it: the
worker asks the kernel for SIGKILL when its parent ends (`PR_SET_PDEATHSIG`, Linux's, hence
"only on Linux") before it works, so no worker runs on alone, holding its temporary files
(nameless, their space given back when the last process holding them ends). A worker that
cannot ask, or whose parent is gone already, does no work: the command, if alive, does its half.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, NoReturn

_STOPPING = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>: the signal a process gets when its parent ends
# How often the command looks whether its worker has ended (each look with Ctrl-C and SIGTERM
# held): a worker works for seconds; the command waits at most this much more.
REAP_EVERY = 0.02


def available() -> bool:
    """Whether this process may fork a worker to a second core (see the module's rules)."""
    return (
        sys.platform == "linux"  # where a worker can be made to die with the command
        and hasattr(os, "sched_getaffinity")
        and hasattr(os, "fork")
        and len(os.sched_getaffinity(0)) > 1
        and threading.active_count() == 1
    )


class Worker:
    """A forked worker, as the command sees it: waited for once (`wait`)."""

    def __init__(self, pid: int, unblocked: Iterable[int]) -> None:
        self.pid = pid  # 0 once reaped
        self._unblocked = unblocked

    def wait(self) -> bool:
        """Wait for the worker to end; whether its work returned (it exited with 0)."""
        status = 0
        while self.pid:  # looked at with Ctrl-C and SIGTERM held: see the module
            signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
            try:
                done, status = os.waitpid(self.pid, os.WNOHANG)
                if done:
                    self.pid = 0  # known reaped before a signal held meanwhile is taken
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, self._unblocked)
            if self.pid:
                time.sleep(REAP_EVERY)
        return status == 0

    def end(self) -> None:
        """Kill and reap the worker, unless it is reaped already: with Ctrl-C and SIGTERM held,
        as a signal taken between the kill and the reaping would leave it unreaped, and one
        taken before the kill would leave it running to its end."""
        if not self.pid:
            return
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
            self.pid = 0
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._unblocked)


@contextlib.contextmanager
def forked(work: Callable[[], object]) -> Iterator[Worker | None]:
    """A worker forked to run `work` (None: no process to spare), ended with the `with`."""
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        yield None
        return
    if pid == 0:  # pragma: no cover (the worker: coverage does not follow a fork)
        _work(work, unblocked, parent)
    worker = Worker(pid, unblocked)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
        yield worker
    finally:
        # Ctrl-C, or an error here: the worker ends with this process. A signal is taken only
        # between looks at the worker, never once it is reaped and before `Worker.pid` says so.
        worker.end()


def _work(work: Callable[[], object], unblocked: Iterable[int], parent: int) -> NoReturn:
    """The worker: `work`, then the end (never a return to the command: Ctrl-C too)."""
    code = 1
    try:
        if _dies_with(parent):  # else it does nothing: it could outlive the command
            signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
            gc.freeze()  # the objects it inherits are never collected: their pages stay shared
            work()
            code = 0
    finally:
        os._exit(code)


def _dies_with(parent: int) -> bool:
    """Whether this worker is now killed when its parent (the process `parent`) ends: asked of
    the kernel, then the parent checked, as it may have ended before it was asked (the worker
    is then another's child already)."""
    import ctypes  # here: only a worker needs it, and only once it is forked

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        asked = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no C library to ask, or no prctl in it
        return False
    return asked and os.getppid() == parent


def received(spool: IO[bytes]) -> object | None:
    """What the worker pickled first into `spool` (a file it shares with this process), read
    from the start and left at the end of it; None when it wrote nothing whole (it died, or
    failed before). Only a worker this process forked writes it, so it is unpickled."""
    spool.seek(0)
    try:
        found: object = pickle.load(spool)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError):
        return None
    return found


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector paused while rows are made (in a worker too, which inherits it):
    what a row made from JSON leaves holds no cycle, so it is freed as it goes, and the passes
    the collector would make over a million rows' objects (a tenth of an export) are saved."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
