"""SIGINT and SIGTERM from a command's first line to its last, and the `Stopper` they drive.

Three stretches, each with its own handling, and a signal in any of them ends the command with
exit 130 and one line, never a traceback nor a silent death by the default action:

- The command (`sigterm_interrupts`, installed by cli.py): SIGTERM raises KeyboardInterrupt, as
  Ctrl-C does, which cli.py reports as "batchrun: interrupted". Before a run starts and after it
  ends (while the summary prints) nothing is half-written that an exception could tear.
- A run's event loop starting and ending (`holding`, around `anyio.run`): an exception raised
  inside a running event loop would tear through the run's teardown, so SIGTERM is only noted
  here. One noted before the run watches signals is handed to it (`receiving`); one noted after
  marks the run interrupted.
- The run itself (`receiving`, the runner's watcher): anyio delivers both signals to the runner,
  which stops (SIGINT) or leaves at once (SIGTERM), resumably.

A SIGINT ignored when the run begins stays ignored, as Python and asyncio leave it: a shell
without job control starts `batchrun run ... &` with SIGINT ignored, for a Ctrl-C at the terminal
is meant for the job in the foreground. SIGTERM is handled either way. `batchrun sandbox` keeps
it ignored too (`stop_signals_taken`).

asyncio sets a signal back to its default action when a receiver closes, whatever was there
before; `receiving` puts back the handler it found. (Between the two lie a few bytecodes, in
which the default action still applies: the one gap left, microseconds wide.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anyio

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Noted:
    """SIGTERMs that came while a run's event loop was starting or ending (process-wide, as
    signal handlers are)."""

    def __init__(self) -> None:
        self.depth = 0
        self.signals: list[signal.Signals] = []


_noted = _Noted()


def _in_main_thread() -> bool:
    # Only the main thread may set signal handlers; elsewhere (a test's worker) nothing changes.
    return threading.current_thread() is threading.main_thread()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _noted.depth:
        _noted.signals.append(signal.Signals(signum))
        return
    # One is enough: a second SIGTERM while the first unwinds must not interrupt the message.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """For a command's duration: SIGTERM ends it as Ctrl-C does (KeyboardInterrupt)."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def holding() -> Iterator[list[signal.Signals]]:
    """Around `anyio.run`: note SIGTERM instead of raising; yields what was noted and not
    handed to the run (it came after the run stopped watching)."""
    if not _in_main_thread() or signal.getsignal(signal.SIGTERM) is not _interrupt:
        yield []
        return
    _noted.depth += 1
    try:
        yield _noted.signals
    finally:
        _noted.depth -= 1
        if not _noted.depth:
            _noted.signals.clear()  # this run's: the next command in this process starts afresh


def stop_signals_taken() -> list[signal.Signals]:
    """The stop signals a command handles: both, but SIGINT not when it is ignored (as it was
    when the command began: nothing in batchrun ignores it)."""
    return [
        sig
        for sig in STOP_SIGNALS
        if sig != signal.SIGINT or signal.getsignal(sig) is not signal.SIG_IGN
    ]


@contextlib.contextmanager
def receiving() -> Iterator[tuple[list[signal.Signals], AsyncIterator[signal.Signals]]]:
    """The run's watcher: (signals noted before it began, the signals as they come)."""
    if not _in_main_thread():
        raise RuntimeError("a run can watch signals only in the main thread")
    import anyio  # here: cli.py imports this module for every command, most of which never run

    watched = stop_signals_taken()
    previous = {sig: signal.getsignal(sig) for sig in watched}
    try:
        with anyio.open_signal_receiver(*watched) as live:
            earlier = list(_noted.signals)
            _noted.signals.clear()
            yield earlier, live
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


class Stopper:
    """Stops a run: the first request lets in-flight work finish, the second leaves at once.

    "In flight" means sent: at the first request the run also withdraws every create still
    waiting for its turn under the rate limit (see `on_first_request`), since nothing has been
    paid for them yet.
    """

    def __init__(self) -> None:
        self.requests = 0
        self._scope: anyio.CancelScope | None = None
        self._leave_on_first = False
        self._on_first: list[Callable[[], None]] = []

    @property
    def stopping(self) -> bool:
        return self.requests > 0

    def request(self) -> None:
        """Ask the run to stop (what Ctrl-C does)."""
        self.requests += 1
        if self.requests == 1 and not self._leave_on_first:
            for callback in list(self._on_first):
                callback()
        elif self._scope is not None:
            self._scope.cancel()

    def leave(self) -> None:
        """Ask the run to stop at once, as a second request does (what SIGTERM does)."""
        self.requests = max(self.requests, 1)
        self.request()

    @contextlib.contextmanager
    def on_first_request(self, callback: Callable[[], None]) -> Iterator[None]:
        """Call `callback` at the first stop request while inside (at once if it came already)."""
        self._on_first.append(callback)
        try:
            if self.requests == 1:
                callback()
            yield
        finally:
            self._on_first.remove(callback)

    @contextlib.contextmanager
    def phase(self, *, leave_on_first: bool) -> Iterator[anyio.CancelScope]:
        """A stretch of the run that a stop request cancels (on the first request, or the
        second); already cancelled if a stop came before it began."""
        import anyio  # here, as in `receiving`: cli.py imports this module for every command

        with anyio.CancelScope() as scope:
            self._scope, self._leave_on_first = scope, leave_on_first
            if self.requests > (0 if leave_on_first else 1):
                scope.cancel()
            try:
                yield scope
            finally:
                self._scope, self._leave_on_first = None, False
