"""The polling schedule on virtual time: requests and lateness per prediction, no server, no sleep.

    python bench/poll_sim.py                          # 2 s ± 0, ±25%, ±50% and a bimodal job
    python bench/poll_sim.py --seeds 5 --chains 200 --waves 10
    python bench/poll_sim.py --only uniform25 --seeds 10

`run_bench.py --no-wait` shaped, without its noise: `chains` slots (the concurrency) each run
`waves` predictions one after the other. A create takes `--create` seconds (the server's clock
starts halfway), a poll `--poll` seconds (it sees the prediction as it is halfway), writing
the created id down `--note` seconds before polling begins. The real
`PollSchedule` and `Poller` decide every wait, scouts and all, on trio's MockClock, which jumps
to the next deadline whenever every task sleeps.

    polls/pred     polls per prediction (requests per prediction is one more: the create)
    late s         mean seconds from a prediction's end (server) to the poll that sees it
    late p90 s     the 90th percentile of that
    wall/ideal     the slowest chain against `waves` × the latency (the bench's ideal)
    wall/chains    the slowest chain against the slowest chain's own run times plus its creates
                   (what a schedule that is never late would take)
"""

from __future__ import annotations

import argparse
import functools
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from trio._core import _run as trio_run
from trio.testing import MockClock

from batchrun.engine.polling import PollSchedule
from batchrun.engine.timing import ROUND_TRIP

Draw = Callable[[random.Random], float]

JOBS: dict[str, tuple[str, Draw]] = {
    "fixed": ("2 s", lambda rng: 2.0),
    "uniform25": ("2 s ± 25% (the bench's --jitter 0.5)", lambda rng: rng.uniform(1.5, 2.5)),
    "uniform50": ("2 s ± 50%", lambda rng: rng.uniform(1.0, 3.0)),
    "bimodal": (
        "70% 2 s ± 10%, 30% 6 s ± 10%",
        lambda rng: rng.uniform(1.8, 2.2) if rng.random() < 0.7 else rng.uniform(5.4, 6.6),
    ),
}


@dataclass
class Figures:
    predictions: int
    polls: int
    late: list[float]
    wall: float
    ideal: float
    chain_floor: float

    @property
    def polls_per_prediction(self) -> float:
        return self.polls / self.predictions

    @property
    def late_mean(self) -> float:
        return statistics.fmean(self.late)

    @property
    def late_p90(self) -> float:
        return sorted(self.late)[int(0.9 * (len(self.late) - 1))]


def simulate(
    draw: Draw,
    *,
    seed: int,
    chains: int = 200,
    waves: int = 10,
    latency: float = 2.0,
    create: float = 0.02,
    poll: float = 0.02,
    note: float = 0.0,
    schedule: PollSchedule | None = None,
) -> Figures:
    """One run on virtual time; the same arguments give the same figures."""
    schedule = schedule or PollSchedule()
    rngs = [random.Random(seed * 100_003 + chain) for chain in range(chains)]
    late: list[float] = []
    ends: list[float] = [0.0] * chains
    floors: list[float] = [0.0] * chains
    polls = 0

    async def one(chain: int) -> None:
        nonlocal polls
        # Tasks due at the same instant wake in the order of their ids (memory addresses, which
        # differ from run to run): a start a tenth of a microsecond apart orders them by chain.
        await anyio.sleep(chain * 1e-7)
        for _ in range(waves):
            seconds = draw(rngs[chain])
            floors[chain] += seconds + create
            await anyio.sleep(create / 2)
            began = anyio.current_time()  # the server's created_at
            await anyio.sleep(create / 2)
            # As the lifecycle does: a create answered within ROUND_TRIP counts as made at once,
            # and the journal's write of its id (`note` seconds) is part of its age.
            await anyio.sleep(note)
            with schedule.poller("job", max(0.0, create - ROUND_TRIP) + note) as poller:
                while True:
                    await poller.wait()
                    polls += 1
                    await anyio.sleep(poll / 2)
                    seen = anyio.current_time() - began
                    await anyio.sleep(poll / 2)
                    if seen >= seconds:
                        late.append(seen - seconds)
                        schedule.observe("job", seconds)
                        break
        ends[chain] = anyio.current_time()

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for chain in range(chains):
                tasks.start_soon(one, chain)

    # trio shuffles the tasks that wake together; its own generator, seeded, orders them the same
    # way each time (a private name: a bench, not a test, so it may lean on one).
    trio_run._r.seed(seed)
    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    slowest = max(range(chains), key=ends.__getitem__)
    return Figures(
        predictions=chains * waves,
        polls=polls,
        late=late,
        wall=ends[slowest],
        ideal=waves * latency,
        chain_floor=floors[slowest],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--chains", type=int, default=200)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--create", type=float, default=0.02, help="seconds per create")
    parser.add_argument("--poll", type=float, default=0.02, help="seconds per poll")
    parser.add_argument(
        "--note", type=float, default=0.0, help="seconds to write a created id down"
    )
    parser.add_argument("--only", choices=sorted(JOBS), action="append")
    args = parser.parse_args()
    header = f"{'job':<40} {'polls/pred':>10} {'late s':>7} {'late p90 s':>10}"
    print(f"{header} {'wall/ideal':>10} {'wall/chains':>11}")
    for name in args.only or list(JOBS):
        title, draw = JOBS[name]
        runs = [
            simulate(
                draw,
                seed=seed,
                chains=args.chains,
                waves=args.waves,
                create=args.create,
                poll=args.poll,
                note=args.note,
            )
            for seed in range(args.seeds)
        ]
        mean = functools.partial(statistics.fmean)
        print(
            f"{title:<40} {mean(r.polls_per_prediction for r in runs):>10.3f}"
            f" {mean(r.late_mean for r in runs):>7.3f} {mean(r.late_p90 for r in runs):>10.3f}"
            f" {mean(r.wall / r.ideal for r in runs):>10.3f}"
            f" {mean(r.wall / r.chain_floor for r in runs):>11.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
