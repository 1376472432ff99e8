"""The one retry loop every request goes through: API calls and file downloads alike.

An attempt either returns, raises a final `BatchrunError`, or raises `Retryable` wrapping the error
to raise if it may not be repeated. Whether something is retryable is decided where the failure is
understood (a create that was sent is never retryable; a GET always is); how long to wait and when
to give up is decided here:

- 429: wait what the server asked (`Retry-After`, else backoff) and pause the limiter so every
  other task waits too; keep going until `rate_limit_budget` seconds have been spent waiting, since
  a server with a much lower limit should slow a run down, not fail it.
- anything else retryable (network errors, 5xx): capped exponential backoff with jitter, at most
  `attempts` tries in all.

The limiter's `Withdrawn` is not a failure and is not caught: that request was never sent.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from batchrun.api.ratelimit import RateLimiter
from batchrun.errors import BatchrunError, RateLimitedError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry; make the numbers tiny in tests."""

    attempts: int = 8
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    rate_limit_budget: float = 600.0

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (0-based): half fixed, half jitter."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0**retry)
        # Never near zero, so synchronized clients still spread out without hammering.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class Retryable(Exception):
    """Raised by an attempt that may be repeated; `error` is raised if it is not."""

    def __init__(self, error: BatchrunError) -> None:
        self.error = error
        # A 429 (the API's; a file host's is a DownloadError, retried like a 5xx).
        self.rate_limited = isinstance(error, RateLimitedError)
        self.retry_after = error.retry_after if isinstance(error, RateLimitedError) else None
        super().__init__(str(error))


def parse_retry_after(headers: Mapping[str, str], body: Any = None) -> float | None:
    """Seconds a 429 asks us to wait: `Retry-After` as seconds or HTTP-date, else `retry_after`."""
    value = headers.get("retry-after", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - time.time())
    if isinstance(body, dict):
        seconds = body.get("retry_after")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            return max(0.0, float(seconds))
    return None


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    limiter: RateLimiter | None = None,
    on_retry: Callable[[Retryable], None] | None = None,
) -> T:
    """Run `attempt` (acquiring `limiter` first each time) until it succeeds or must not retry."""
    failures = 0
    throttles = 0
    throttled_for = 0.0
    while True:
        if limiter is not None:
            await limiter.acquire()
        try:
            return await attempt()
        except Retryable as retry:
            if retry.rate_limited:
                delay = retry.retry_after or policy.backoff(throttles)
                throttles += 1
                if throttled_for + delay > policy.rate_limit_budget:
                    raise _gave_up(retry.error, throttled_for) from None
                throttled_for += delay
            else:
                failures += 1
                if failures >= policy.attempts:
                    raise retry.error from None
                delay = policy.backoff(failures - 1)
            if on_retry is not None:
                on_retry(retry)
            if retry.rate_limited and limiter is not None:
                # The next acquire (ours and everyone else's) waits out the pause.
                limiter.pause(delay)
            else:
                await anyio.sleep(delay)


def _gave_up(error: BatchrunError, waited: float) -> BatchrunError:
    if not isinstance(error, RateLimitedError):
        return error
    return RateLimitedError(
        f"{str(error).rstrip('.')}; gave up after waiting {waited:.0f} s in all for the rate limit",
        retry_after=error.retry_after,
        method=error.method,
        url=error.url,
        status=error.status,
        detail=error.detail,
    )
