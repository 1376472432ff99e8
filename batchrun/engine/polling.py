"""When to look at an unfinished prediction again.

A fixed interval is either wasteful (many requests per prediction) or late (the result sits
unseen). Predictions of one job in a batch take about the same time, give or take a spread, so
each job learns the run times of its recent predictions (`completed_at - created_at`, both by
the server's clock) and plans its looks on them: of all the ways to look at a prediction as old
as this one, the one that costs least, counting each second a result waits unseen and, for each
look that finds it still running, WORTH times the median run time. The looks fall on run times
seen (dynamic programming over them, `looks`): with run times of 2 s ± 25% the first comes when
about 75% of them are over, the second at the longest, about 1.25 looks per prediction, each
result seen about 0.3 s after it finished; a job whose run times fall in two groups is looked at
as the first group ends, then as the second does. No look comes later than REACH times the
prediction's age (a long tail that may be gone is followed, not jumped to), and one older than
every run time seen is looked at a growing step apart.

The age counts from the create's answer (less any time the API held it for `Prefer: wait`),
including the moment it takes to write the prediction's id down before polling begins.

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
# (a model that warms up, a busy hour) and to plan the looks on often.
WINDOW = 64
# What one look is worth, in seconds of a result seen late, as a share of the median run time:
# higher means fewer looks that find a prediction still running, lower means results seen
# sooner. (At 0.26, run times of 2 s ± 25% are looked at 1.25 times each.)
WORTH = 0.26
# The looks are planned again after this many new run times (each plan is O(WINDOW²)).
REPLAN = 8
# The latest next look, as a multiple of the prediction's age (of the median run time, for a
# young one): a long tail in the run times seen is followed, not jumped to, in case it is gone
# (a model that warmed up), and no result is seen later than twice its age.
REACH = 3.0
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
        self._plan: tuple[list[float], list[int]] | None = None
        self._new = 0  # run times learned since the plan was drawn

    def observe(self, seconds: float) -> None:
        self.times.append(seconds)
        self._new += 1
        self.learned.set()

    def plan(self, worth: float) -> tuple[list[float], list[int]]:
        """The run times seen, sorted, and for each count of them a prediction has outlived, the
        index of the one to look at next (drawn again after REPLAN new ones, or every one while
        the window fills)."""
        if self._plan is None or self._new >= REPLAN or (len(self.times) < WINDOW and self._new):
            times = sorted(self.times)
            self._plan, self._new = (times, looks(times, worth * times[len(times) // 2])), 0
        return self._plan


def looks(times: list[float], worth: float) -> list[int]:
    """For each i (a prediction known to outlive the first i of the sorted `times`), the index of
    the run time to look at next, so that the looks cost the least: the seconds by which each
    run time is seen late, plus `worth` seconds for each look made by a prediction not yet done.

    A look at one of the run times seen is never worse than one between two of them (later
    sees no more, earlier sees fewer), so these are the only candidates: dynamic programming
    over the n + 1 states, O(n²).
    """
    n = len(times)
    prefix = [0.0]
    for seconds in times:
        prefix.append(prefix[-1] + seconds)
    # Candidates: the last of each run of equal times (a look at a time sees all of them).
    ends = [j for j in range(1, n + 1) if j == n or times[j] > times[j - 1]]
    cost = [0.0] * (n + 1)
    best = [n] * (n + 1)
    for i in range(n - 1, -1, -1):
        fixed = worth * (n - i) + prefix[i]
        least, choice = float("inf"), n
        for j in ends[bisect.bisect_right(ends, i) :]:
            # times[j - 1] is the j-th run time: looking then sees those from i + 1 to j.
            found = fixed + (j - i) * times[j - 1] - prefix[j] + cost[j]
            if found < least:
                least, choice = found, j
        cost[i], best[i] = least, choice - 1
    return best


class PollSchedule:
    """Per-job poll timing, learned from finished predictions."""

    def __init__(
        self,
        *,
        first: float = 0.25,
        factor: float = 1.5,
        cap: float = 10.0,
        floor: float = 0.2,
        worth: float = WORTH,
        scouts: int = SCOUTS,
    ) -> None:
        self._first = first
        self._factor = factor
        self._cap = cap
        self._floor = floor
        self._worth = worth
        self._scouts = scouts
        self._jobs: dict[str, _Job] = {}

    def _job(self, job: str) -> _Job:
        known = self._jobs.get(job)
        if known is None:
            known = self._jobs[job] = _Job()
        return known

    def observe(self, job: str, seconds: float) -> None:
        """Learn from one finished prediction of `job`."""
        self._job(job).observe(seconds)

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
    ) -> tuple[float, float | None]:
        """Seconds until the next poll of a prediction `age` seconds old, and the step after it.

        `step` is None before the first poll by the learned schedule; after it, each poll comes
        at most `step` after the one before, and the step grows by `factor` up to `cap`.
        """
        if not known.times:
            step = self._first if step is None else min(self._cap, step * self._factor)
            # Not a scout: poll seldom until a scout's prediction ends and the job learns.
            return (step if scout else max(step, self._cap)), step
        times, nexts = known.plan(self._worth)
        seen = bisect.bisect_right(times, age)
        if seen < len(times):  # within the spread seen: the cheapest next look, within REACH
            reach = REACH * max(age, times[len(times) // 2])
            return max(self._floor, min(times[nexts[seen]], reach) - age), None
        # Older than every run time seen: followed a growing step at a time, not jumped ahead.
        if step is None:
            step = max(self._floor, times[len(times) // 2] * 0.1) / self._factor
        step = min(self._cap, step * self._factor)
        return step, step


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
