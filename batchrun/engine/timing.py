"""A prediction's clock: when it was created, the wait and Cancel-After its timeout allows.

By the event loop's clock; and whether a canceled prediction was ended by its timeout."""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from batchrun.api.objects import Prediction
from batchrun.engine.polling import run_seconds
from batchrun.manifest.records import Record, Status, utcnow

# Replicate refuses a Cancel-After shorter than this; a shorter timeout is kept by a cancel only.
CANCEL_AFTER_MIN = 5.0
# A create answered within this many seconds was not held by the API: its prediction is new.
ROUND_TRIP = 0.5


def born(sent: float, answered: float) -> float:
    """When a prediction was created, by the event loop's clock, from when its create was sent
    and answered: an answer within ROUND_TRIP is taken as made at once (a look planned for an
    age then comes that little late, never early); one the API held longer (`Prefer: wait`)
    that much earlier, so that its first look is not late by the whole hold."""
    return min(answered, sent + ROUND_TRIP)


def wait_within(wait: int | None, timeout: float | None) -> int | None:
    """A create's `Prefer: wait` that ends by the timeout, so the cancel can come in time."""
    if timeout is None or wait is None or wait <= timeout:
        return wait
    return int(timeout)  # 0 for a timeout under a second: the create answers at once


def cancel_after(timeout: float | None) -> str | None:
    """The `Cancel-After` header for a timeout, when the API can take it: the API then ends the
    prediction at the deadline itself, so what it ran is bounded even if a cancel comes late."""
    if timeout is None or timeout < CANCEL_AFTER_MIN or timeout != int(timeout):
        return None
    return f"{int(timeout)}s"


def timed_out(prediction: Prediction, deadline: float | None) -> bool:
    """Whether a canceled prediction was ended by its timeout (batchrun's cancel, or the API's
    at the Cancel-After deadline)."""
    if prediction.status != Status.CANCELED or deadline is None:
        return False
    return anyio.current_time() >= deadline


def deadline_of(record: Record, timeouts: Mapping[str, float]) -> float | None:
    """When a prediction created earlier (by the API's clock) runs past its job's timeout,
    on this run's clock."""
    timeout = timeouts.get(record.job)
    if timeout is None:
        return None
    age = run_seconds(record.created_at, utcnow()) or 0.0
    return anyio.current_time() + max(0.0, timeout - age)
