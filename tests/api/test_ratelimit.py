"""RateLimiter on virtual time: trio's MockClock jumps ahead whenever every task is asleep, so the
timings asserted here are exact and do not depend on how busy the machine is."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from virtual import virtual_time

from batchrun.api.ratelimit import RateLimiter, Withdrawn, polite


async def times_of(limiter: RateLimiter, count: int) -> list[float]:
    start = anyio.current_time()
    times = []
    for _ in range(count):
        await limiter.acquire()
        times.append(round(anyio.current_time() - start, 6))
    return times


@virtual_time
async def test_rate_is_respected_one_token_at_a_time() -> None:
    limiter = RateLimiter(10, burst=1)
    assert await times_of(limiter, 5) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert limiter.acquired == 5


@virtual_time
async def test_burst_is_served_at_once_then_the_rate_applies() -> None:
    limiter = RateLimiter(2, burst=3)
    assert await times_of(limiter, 6) == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5]


@virtual_time
async def test_default_burst_is_one_second_of_tokens() -> None:
    limiter = RateLimiter(4)
    assert limiter.burst == 4
    assert await times_of(limiter, 6) == [0.0, 0.0, 0.0, 0.0, 0.25, 0.5]


@virtual_time
async def test_idle_time_refills_the_bucket_but_not_past_the_burst() -> None:
    limiter = RateLimiter(1, burst=2)
    await times_of(limiter, 2)
    await anyio.sleep(10)
    assert await times_of(limiter, 3) == [0.0, 0.0, 1.0]


@virtual_time
async def test_many_tasks_share_the_rate() -> None:
    limiter = RateLimiter(5, burst=1)
    done: list[float] = []
    start = anyio.current_time()

    async def worker() -> None:
        for _ in range(4):
            await limiter.acquire()
            done.append(anyio.current_time() - start)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(worker)
    # 20 tokens at 5 per second with no burst: the last one at 19 * 0.2 seconds.
    assert len(done) == 20
    assert done[-1] == pytest.approx(3.8)
    gaps = [b - a for a, b in itertools.pairwise(done)]
    assert min(gaps) == pytest.approx(0.2)


@virtual_time
async def test_waiters_are_served_in_arrival_order() -> None:
    limiter = RateLimiter(1, burst=1)
    await limiter.acquire()  # empty the bucket so everyone below has to queue
    order: list[int] = []

    async def waiter(number: int) -> None:
        await limiter.acquire()
        order.append(number)

    async with anyio.create_task_group() as tg:
        for number in range(8):
            tg.start_soon(waiter, number)
            # Let this waiter reach the queue before the next one is even started.
            await anyio.sleep(0.01)
    assert order == list(range(8))


@virtual_time
async def test_a_cancelled_waiter_does_not_take_a_token_or_stall_the_queue() -> None:
    limiter = RateLimiter(1, burst=1)
    await limiter.acquire()
    start = anyio.current_time()
    got: list[str] = []

    async def patient() -> None:
        await limiter.acquire()
        got.append("patient")

    async with anyio.create_task_group() as tg:
        with anyio.move_on_after(0.5):
            await limiter.acquire()
            got.append("impatient")
        tg.start_soon(patient)
    assert got == ["patient"]
    assert anyio.current_time() - start == pytest.approx(1.0)
    assert limiter.acquired == 2


@virtual_time
async def test_pause_blocks_every_acquirer_until_it_ends() -> None:
    limiter = RateLimiter(100, burst=100, adaptive=False)
    start = anyio.current_time()
    limiter.pause(5)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(anyio.current_time() - start)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(one)
    assert len(times) == 3
    assert min(times) >= 5.0
    # After the pause the bucket starts empty: tokens come at the rate, not in a burst.
    assert sorted(times) == pytest.approx([5.01, 5.02, 5.03])


@virtual_time
async def test_pause_holds_back_a_waiter_that_was_already_asleep() -> None:
    limiter = RateLimiter(1, burst=1, adaptive=False)
    await limiter.acquire()
    start = anyio.current_time()
    times: list[float] = []

    async def waiter() -> None:
        await limiter.acquire()  # would get its token at +1 s without the pause
        times.append(anyio.current_time() - start)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.5)
        limiter.pause(3)
    assert times == [pytest.approx(4.5)]


@virtual_time
async def test_a_shorter_pause_does_not_cut_a_longer_one_short() -> None:
    limiter = RateLimiter(10, adaptive=False)
    limiter.pause(5)
    limiter.pause(1)
    start = anyio.current_time()
    await limiter.acquire()
    assert anyio.current_time() - start >= 5.0


@virtual_time
async def test_a_429_halves_the_rate_once_per_pause_then_it_recovers_step_by_step() -> None:
    limiter = RateLimiter(10, recovery_interval=10, recovery_step=1)
    assert limiter.current_rate == 10
    limiter.pause(2)
    assert limiter.current_rate == 5
    # More 429s from requests that were in flight when the first came: the same storm.
    limiter.pause(2)
    limiter.pause(1)
    assert limiter.current_rate == 5
    assert (limiter.pauses, limiter.decreases) == (3, 1)
    await anyio.sleep(2 + 9.9)
    assert limiter.current_rate == 5
    await anyio.sleep(0.1)
    assert limiter.current_rate == 6
    await anyio.sleep(30)
    assert limiter.current_rate == 9
    await anyio.sleep(100)
    assert limiter.current_rate == 10


@virtual_time
async def test_a_new_429_after_the_pause_lowers_the_rate_again() -> None:
    limiter = RateLimiter(8, recovery_interval=10)
    limiter.pause(1)
    await anyio.sleep(1.5)
    limiter.pause(1)
    assert limiter.current_rate == 2


@virtual_time
async def test_the_rate_never_falls_below_the_floor() -> None:
    limiter = RateLimiter(10, min_rate=3)
    for _ in range(5):
        limiter.pause(0)
    assert limiter.current_rate == 3


@virtual_time
async def test_the_lowered_rate_is_what_acquirers_get() -> None:
    limiter = RateLimiter(10, burst=1, recovery_interval=1000)
    limiter.pause(1)
    await anyio.sleep(1)
    assert await times_of(limiter, 4) == [0.2, 0.4, 0.6, 0.8]


@virtual_time
async def test_without_adaptation_a_pause_keeps_the_rate() -> None:
    limiter = RateLimiter(10, adaptive=False)
    limiter.pause(1)
    assert limiter.current_rate == 10
    assert limiter.decreases == 0


@virtual_time
async def test_withdraw_all_ends_every_wait_and_every_later_one() -> None:
    limiter = RateLimiter(1, burst=1)
    start = anyio.current_time()
    outcomes: list[tuple[float, str]] = []

    async def take() -> None:
        try:
            await limiter.acquire()
            outcomes.append((round(anyio.current_time() - start, 6), "got"))
        except Withdrawn:
            outcomes.append((round(anyio.current_time() - start, 6), "withdrawn"))

    async with anyio.create_task_group() as tasks:
        for _ in range(4):
            tasks.start_soon(take)
        await anyio.sleep(1.5)  # one has its token at once, one at 1.0, two still wait
        limiter.withdraw_all()
    assert outcomes == [(0.0, "got"), (1.0, "got"), (1.5, "withdrawn"), (1.5, "withdrawn")]
    with pytest.raises(Withdrawn):
        await limiter.acquire()
    assert limiter.acquired == 2


@virtual_time
async def test_polite_stays_under_the_rate_with_half_a_second_of_burst() -> None:
    limiter = polite(10)
    assert limiter.configured_rate == pytest.approx(9.8)
    assert limiter.burst == pytest.approx(4.9)
    limiter.pause(0)
    assert limiter.current_rate == pytest.approx(9.8 * 0.8)
    await anyio.sleep(2)
    assert limiter.current_rate == pytest.approx(9.8 * 0.8 + 9.8 / 20)


def test_an_injected_clock_and_sleep_drive_the_limiter() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    async def main() -> None:
        limiter = RateLimiter(4, burst=1, clock=lambda: now[0], sleep=sleep)
        for _ in range(3):
            await limiter.acquire()

    anyio.run(main)
    assert slept == [0.25, 0.25]
    assert now[0] == pytest.approx(100.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_second": 0}, "a rate must be positive, got 0"),
        ({"per_second": 1, "burst": 0.5}, "a burst must be at least 1, got 0.5"),
        ({"per_second": 1, "decrease": 1.0}, "decrease must be between 0 and 1, got 1.0"),
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        RateLimiter(**kwargs)
