"""Async tests on virtual time: trio's MockClock jumps ahead whenever every task is asleep."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from trio.testing import MockClock


def virtual_time(test: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test on trio with a clock that jumps to the next deadline when all sleep.

    (The anyio pytest plugin runs trio in guest mode, where the autojumping clock stalls, so the
    test runs under its own `anyio.run`.)
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        clock = MockClock(autojump_threshold=0)
        anyio.run(
            functools.partial(test, *args, **kwargs),
            backend="trio",
            backend_options={"clock": clock},
        )

    return run
