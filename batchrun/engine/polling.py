"""When to look at an unfinished prediction again.

A fixed interval is either wasteful (many requests per prediction) or late (the result sits
unseen). Predictions of one job in a batch take about the same time, so each job learns its typical
run time from the predictions that finished (`completed_at - created_at`, both by the server's
clock) and polls first just after it, then backs off. Until a job has finished anything, polling
starts fast and backs off geometrically.
"""

from __future__ import annotations

from collections.abc import Iterator

from batchrun.api.objects import parse_time


def run_seconds(created_at: str | None, completed_at: str | None) -> float | None:
    """How long the server says a prediction took from creation to completion."""
    start, end = parse_time(created_at), parse_time(completed_at)
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds >= 0 else None


class PollSchedule:
    """Per-job poll timing, learned from finished predictions."""

    def __init__(
        self,
        *,
        first: float = 0.5,
        factor: float = 1.5,
        cap: float = 10.0,
        floor: float = 0.2,
        weight: float = 0.2,
    ) -> None:
        self._first = first
        self._factor = factor
        self._cap = cap
        self._floor = floor
        self._weight = weight
        self._typical: dict[str, float] = {}

    def observe(self, job: str, seconds: float) -> None:
        """Learn from one finished prediction of `job` (a moving average of run times)."""
        current = self._typical.get(job)
        if current is None:
            self._typical[job] = seconds
        else:
            self._typical[job] = current + self._weight * (seconds - current)

    def typical(self, job: str) -> float | None:
        """The learned run time of `job`, if any prediction of it has finished."""
        return self._typical.get(job)

    def delays(self, job: str, elapsed: float) -> Iterator[float]:
        """Seconds to sleep before each poll of a prediction `elapsed` seconds old."""
        typical = self._typical.get(job)
        if typical is None:
            step = self._first
            yield step
        else:
            yield max(self._floor, typical - elapsed)
            step = max(self._floor, typical * 0.1)
            yield step
        while True:
            step = min(self._cap, step * self._factor)
            yield step
