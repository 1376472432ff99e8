"""When to look at an unfinished prediction again.

A fixed interval is either wasteful (many requests per prediction) or late (the result sits
unseen). Predictions of one job in a batch take about the same time, give or take a spread, so
each job learns the run times of its recent predictions (`completed_at - created_at`, both by
the server's clock) and polls each prediction when most of those as old as it would have
finished: first at the QUANTILE of the run times seen, then at the QUANTILE of those longer
than its age so far, never more than a growing step later than the last look (a long tail is
followed, not jumped to). One create and one poll when the prediction ends is the floor; with
run times of 2 s ± 25% this makes about 1.25 polls per prediction, each seen about 0.3 s after
it finished (bench/run_bench.py --no-wait --jitter 0.5).

Before a job has finished anything, a few of its predictions (SCOUTS) poll fast, backing off
geometrically, to learn for the rest; the others wait until the first run time is known (or a
slow poll falls due) and then follow the learned schedule.

A Replicate-compatible proxy may document no list endpoint, so the schedule never relies on one.
"""

from __future__ import annotations

import bisect
import contextlib
from collections import deque
from collections.abc import Iterator

import anyio

from batchrun.api.objects import parse_time

# Run times remembered per job: enough to see the spread, few enough to follow a change of speed
# (a model that warms up, a busy hour) and to sort for every poll.
WINDOW = 64
# Of the predictions as old as this one, the share that should have finished when it is polled:
# higher means fewer polls that find it still running, lower means results seen sooner.
QUANTILE = 0.8
# The latest first look, in medians of the run times seen: a long tail (a quarter of the
# predictions taking ten times longer) must not hold back the poll that finds the rest done.
FIRST_LOOK = 2.0
# Predictions of a job that poll fast while it has no run time yet; the others wait for theirs.
SCOUTS = 4


def run_seconds(created_at: str | None, completed_at: str | None) -> float | None:
    """How long the server says a prediction took from creation to completion."""
    start, end = parse_time(created_at), parse_time(completed_at)
    if start is None or end is None or start.tzinfo is None or end.tzinfo is None:
        return None
    seconds = (end - start).total_seconds()
    return seconds if seconds >= 0 else None


class _Job:
    """What one job has learned: its recent run times, and who scouts while there are none."""

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=WINDOW)
        self.scouts = 0
        self.learned = anyio.Event()


class PollSchedule:
    """Per-job poll timing, learned from finished predictions."""

    def __init__(
        self,
        *,
        first: float = 0.5,
        factor: float = 1.5,
        cap: float = 10.0,
        floor: float = 0.2,
        quantile: float = QUANTILE,
        scouts: int = SCOUTS,
    ) -> None:
        self._first = first
        self._factor = factor
        self._cap = cap
        self._floor = floor
        self._quantile = quantile
        self._scouts = scouts
        self._jobs: dict[str, _Job] = {}

    def _job(self, job: str) -> _Job:
        known = self._jobs.get(job)
        if known is None:
            known = self._jobs[job] = _Job()
        return known

    def observe(self, job: str, seconds: float) -> None:
        """Learn from one finished prediction of `job`."""
        known = self._job(job)
        known.times.append(seconds)
        known.learned.set()

    @contextlib.contextmanager
    def poller(self, job: str, elapsed: float) -> Iterator[Poller]:
        """The poll timing of one prediction of `job`, `elapsed` seconds old (inf: unknown)."""
        known = self._job(job)
        scout = not known.times and known.scouts < self._scouts
        if scout:
            known.scouts += 1
        try:
            yield Poller(self, known, elapsed, scout=scout)
        finally:
            if scout:
                known.scouts -= 1

    def next_delay(
        self, known: _Job, age: float, step: float | None, *, scout: bool = True
    ) -> tuple[float, float]:
        """Seconds until the next poll of a prediction `age` seconds old, and the step after it.

        `step` is None before the first poll by the learned schedule; after it, each poll comes
        at most `step` after the one before, and the step grows by `factor` up to `cap`.
        """
        if not known.times:
            step = self._first if step is None else min(self._cap, step * self._factor)
            # Not a scout: poll seldom until a scout's prediction ends and the job learns.
            return (step if scout else max(step, self._cap)), step
        times = sorted(known.times)
        if step is None:
            # The first look by what was learned: when QUANTILE of the run times seen are over,
            # but no later than FIRST_LOOK × their median (where a long tail holds the quantile).
            median = times[len(times) // 2]
            first = min(times[int(self._quantile * (len(times) - 1))], FIRST_LOOK * median)
            step = max(self._floor, median * 0.1)
            if first > age:
                return max(self._floor, first - age), step
            step /= self._factor  # older already: the next looks come a step apart
        # Then when QUANTILE of those older than this one are over, at most a step later.
        step = min(self._cap, step * self._factor)
        longer = times[bisect.bisect_right(times, age) :]
        target = longer[int(self._quantile * (len(longer) - 1))] - age if longer else step
        return max(self._floor, min(target, step)), step


class Poller:
    """When one prediction is looked at next: `await poller.wait()` before each poll."""

    def __init__(self, schedule: PollSchedule, known: _Job, elapsed: float, *, scout: bool) -> None:
        self._schedule = schedule
        self._known = known
        self._elapsed = elapsed  # the prediction's age when its polling began
        self._started: float | None = None  # by the event loop's clock, at the first wait
        self._scout = scout
        self._step: float | None = None
        self._learning = not known.times  # the first poll once run times are known resets the step

    def next_delay(self, age: float) -> float:
        """Seconds until the next poll, `age` seconds after the prediction was created."""
        if self._learning and self._known.times:
            self._learning, self._step = False, None
        delay, self._step = self._schedule.next_delay(
            self._known, age, self._step, scout=self._scout
        )
        return delay

    async def wait(self) -> None:
        """Sleep until the next poll; a waiting non-scout wakes when its job first learns."""
        if self._started is None:
            self._started = anyio.current_time() - self._elapsed
        delay = self.next_delay(anyio.current_time() - self._started)
        if self._known.times or self._scout:
            await anyio.sleep(delay)
            return
        with anyio.move_on_after(delay) as slow:
            await self._known.learned.wait()
        if not slow.cancelled_caught:  # woken by the job's first run time: go by it from here
            await anyio.sleep(self.next_delay(anyio.current_time() - self._started))
