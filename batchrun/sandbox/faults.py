"""Fault injection: seeded dice, the create rate limit, and dropping a connection unanswered.

Each kind of fault rolls its own `random.Random` seeded from `(seed, kind)`, so turning one
fault on does not shift the others' sequences: the same seed and the same requests give the
same faults.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from batchrun.sandbox.config import RateLimit, SandboxConfig

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

KINDS = ("error", "reset", "lose_create", "failure", "latency")


class ConnectionDropped(Exception):
    """Raised where there is no socket to drop (an in-process ASGI transport)."""


class TokenBucket:
    """Creates allowed at `rate.per_second`, in bursts of up to `rate.burst`."""

    def __init__(self, rate: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = float(rate.burst)
        self._updated = clock()

    def take(self) -> float | None:
        """Spend one token; if none is left, return the seconds until one is (and spend none)."""
        now = self._clock()
        refill = (now - self._updated) * self.rate.per_second
        self._tokens = min(float(self.rate.burst), self._tokens + refill)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.rate.per_second


class Faults:
    """The dice and the bucket for one configuration; rebuilt when the seed or limit changes."""

    def __init__(self, config: SandboxConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self._rngs = {kind: random.Random(f"{config.seed}:{kind}") for kind in KINDS}
        self.bucket = TokenBucket(config.rate, clock) if config.rate else None

    def reuse_dice(self, other: Faults) -> None:
        """Keep `other`'s dice mid-sequence (a new rate limit must not replay the faults)."""
        self._rngs = other._rngs

    def roll(self, kind: str, share: float) -> bool:
        """True with probability `share` (never touches the dice when `share` is 0)."""
        return share > 0 and self._rngs[kind].random() < share

    def latency(self, config: SandboxConfig) -> float:
        """A prediction's latency: the configured one, moved by up to `jitter` either way."""
        if config.jitter <= 0:
            return config.latency
        return max(0.0, config.latency + self._rngs["latency"].uniform(-1, 1) * config.jitter)


class _Transport(Protocol):
    def abort(self) -> None: ...

    def get_extra_info(self, name: str) -> Any: ...


def _transport(send: Send) -> _Transport | None:
    # uvicorn hands the app its request cycle's bound `send`; the cycle holds the transport.
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    return transport if hasattr(transport, "abort") else None


async def drop_connection(send: Send, receive: Receive) -> None:
    """Reset the client's connection (TCP RST) without an answer.

    Raising from an ASGI app would not do: uvicorn answers 500 for it. Where there is no
    socket (httpx.ASGITransport) this raises ConnectionDropped instead.
    """
    transport = _transport(send)
    if transport is None:
        raise ConnectionDropped("the sandbox dropped the connection without an answer")
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            # Linger 0 makes close() send RST, which the client sees as "connection reset".
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    # Wait until uvicorn has seen the connection go, or it would try to answer 500 on it.
    while (await receive())["type"] != "http.disconnect":
        pass
