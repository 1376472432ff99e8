"""A token-bucket rate limiter for anyio tasks, which slows down when the server says 429.

Acquirers queue behind one fair lock, so tokens are handed out in the order they were asked for:
a task that has waited longest is served first, however many tasks pile up. Only the task at the
head of the queue sleeps, and it re-checks the bucket when it wakes, so a `pause()` that arrives
while it sleeps still holds it back.

Adaptation is AIMD, as in TCP: a 429 cuts the rate by `decrease` (once per pause, so a burst of
429s from requests that were already in flight counts once), and every `recovery_interval` seconds
without one adds `recovery_step` back, up to the configured rate.

`withdraw_all()` ends every wait for a turn with `Withdrawn`, and every later one too: a run that
is stopping sends nothing it has not sent yet, and a request still waiting here has not been sent.

`polite()` is the one place where batchrun's limiters are tuned (the default rates themselves are
the spec format's: `batchrun.spec.load.DEFAULT_RATE` and `DEFAULT_REQUESTS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

# Our bucket and a server's never tick together: at exactly its rate, every jitter is a 429.
POLITE_SHARE = 0.98
# Seconds of the rate that may go out at once after an idle spell; a server counts a burst of
# up to a second of its rate, and half leaves room for the tick mismatch above.
POLITE_BURST_SECONDS = 0.5
# A 429 cuts the rate by a fifth (not a half), and a twentieth of it comes back every 2 s: one
# stray 429 costs a few seconds of pace, not a minute, while a server with a lower limit still
# pushes the rate down to it after a few.
POLITE_DECREASE = 0.8
POLITE_RECOVERY_SHARE = 1 / 20
POLITE_RECOVERY_INTERVAL = 2.0


class Withdrawn(Exception):
    """An `acquire()` given up by `withdraw_all()`: the request it was for was never sent."""


class RateLimiter:
    """Token bucket on anyio: `await acquire()` before each request; `pause(s)` after a 429."""

    def __init__(
        self,
        per_second: float,
        *,
        burst: float | None = None,
        adaptive: bool = True,
        clock: Callable[[], float] = anyio.current_time,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        decrease: float = 0.5,
        min_rate: float | None = None,
        recovery_step: float | None = None,
        recovery_interval: float = 10.0,
    ) -> None:
        if per_second <= 0:
            raise ValueError(f"a rate must be positive, got {per_second}")
        if burst is not None and burst < 1:
            raise ValueError(f"a burst must be at least 1, got {burst}")
        if not 0 < decrease < 1:
            raise ValueError(f"decrease must be between 0 and 1, got {decrease}")
        self.configured_rate = float(per_second)
        self.burst = float(burst) if burst is not None else max(1.0, self.configured_rate)
        self.adaptive = adaptive
        self._clock = clock
        self._sleep = sleep
        self._decrease = decrease
        # The floor keeps a long 429 storm from stalling the run for hours once it has passed.
        self._min_rate = min_rate if min_rate is not None else self.configured_rate / 64
        self._step = recovery_step if recovery_step is not None else self.configured_rate / 10
        self._interval = recovery_interval
        self._rate = self.configured_rate
        self._tokens = self.burst
        self._updated: float | None = None  # clock reading the bucket was last refilled at
        self._paused_until = float("-inf")
        self._recovered_at = float("-inf")  # clock reading the last recovery step counts from
        self._lock = anyio.Lock()
        self._waits: set[anyio.CancelScope] = set()
        self.withdrawn = False
        self.acquired = 0
        self.pauses = 0
        self.decreases = 0

    @property
    def current_rate(self) -> float:
        """Tokens per second right now, after any decrease and the recovery since."""
        self._refill(self._clock())
        return self._rate

    async def acquire(self) -> None:
        """Wait for a token, in the order callers arrived; `Withdrawn` once `withdraw_all()`."""
        with anyio.CancelScope() as wait:
            self._waits.add(wait)
            try:
                if not self.withdrawn:
                    await self._take()
            finally:
                self._waits.discard(wait)
        # A token handed out in the same tick as the withdrawal is not used either.
        if self.withdrawn:
            raise Withdrawn

    def withdraw_all(self) -> None:
        """End every wait for a turn with `Withdrawn`, now and from now on."""
        self.withdrawn = True
        for wait in self._waits:
            wait.cancel()

    async def _take(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._refill(now)
                wait = max(self._paused_until - now, (1.0 - self._tokens) / self._rate)
                # A nanosecond is "now": float rounding must not leave a token forever 1e-16 away.
                if wait <= 1e-9:
                    self._tokens -= 1.0
                    self.acquired += 1
                    return
                await self._sleep(wait)

    def pause(self, seconds: float) -> None:
        """Hand out no token for `seconds` from now, and (if adaptive) lower the rate."""
        now = self._clock()
        self._refill(now)
        self.pauses += 1
        already_paused = now < self._paused_until
        until = now + max(0.0, seconds)
        if until > self._paused_until:
            self._paused_until = until
        # Whatever was saved up before the 429 is not ours to spend right after it.
        self._tokens = min(self._tokens, 0.0)
        self._updated = max(now, self._paused_until)
        if self.adaptive and not already_paused:
            self._rate = max(self._min_rate, self._rate * self._decrease)
            self.decreases += 1
        self._recovered_at = self._paused_until

    def _refill(self, now: float) -> None:
        if self._updated is None:
            self._updated = now
        elif now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
        if self._rate < self.configured_rate and now >= self._recovered_at + self._interval:
            steps = int((now - self._recovered_at) // self._interval)
            self._rate = min(self.configured_rate, self._rate + steps * self._step)
            self._recovered_at += steps * self._interval


def polite(per_second: float) -> RateLimiter:
    """A limiter that keeps under a server's limit of `per_second`, and takes a 429 calmly."""
    rate = per_second * POLITE_SHARE
    return RateLimiter(
        rate,
        burst=max(1.0, rate * POLITE_BURST_SECONDS),
        decrease=POLITE_DECREASE,
        recovery_step=rate * POLITE_RECOVERY_SHARE,
        recovery_interval=POLITE_RECOVERY_INTERVAL,
    )
