"""A run's producers and prediction tasks: a key's task starts within the caps and the budget.

Per job, a producer walks the plan and starts a task for each key that needs work once a place
is free under the job's cap and the run's, and the budget holds what it may cost."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.lowlevel

from batchrun.api.ratelimit import Withdrawn
from batchrun.cost import ESTIMATED, SchemaCount, bounds, money
from batchrun.engine.budget import Budget
from batchrun.engine.lifecycle import Lifecycle
from batchrun.engine.runtypes import Progress, RunOptions
from batchrun.engine.signals import Stopper
from batchrun.engine.survey import Survey, classify, in_scope
from batchrun.engine.work import Action, Work
from batchrun.errors import AuthenticationError, BatchrunError, SpecError
from batchrun.manifest.reader import ManifestIndex
from batchrun.manifest.state import State
from batchrun.planner.expand import iter_plan
from batchrun.spec.jobs import Job
from batchrun.spec.load import Spec


class Producers:
    """The work of a run once it knows what is left: the keys it started, and the downloads in
    flight (predictions that are over, each holding a download place, not a place in flight)."""

    def __init__(
        self,
        spec: Spec,
        options: RunOptions,
        run_dir: Path,
        survey: Survey,
        concurrency: int,
        stopper: Stopper,
        budget: Budget,
        timeouts: dict[str, float],
        counts: dict[str, SchemaCount | None],
        progress: Progress,
    ) -> None:
        self.spec = spec
        self.options = options
        self.run_dir = run_dir
        self.survey = survey
        self.concurrency = concurrency
        self.stopper = stopper
        self.budget = budget
        self.timeouts = timeouts
        # Per job, what its model's schema says of num_outputs (the pre-flight's record): the
        # images a prediction without num_outputs makes, which the budget reserves for.
        self.counts = counts
        self.progress = progress
        # Predictions that are over and only downloading: as many as may be in flight.
        self._downloads = anyio.CapacityLimiter(self.concurrency)
        self.started = 0
        self._said_budget = False

    async def work(self, lifecycle: Lifecycle, index: ManifestIndex) -> None:
        overall = anyio.CapacityLimiter(self.concurrency)
        with self.stopper.phase(leave_on_first=False):
            async with anyio.create_task_group() as tasks:
                for job in self.spec.jobs:
                    if self.survey.work[job.id]:
                        tasks.start_soon(self._produce, job, lifecycle, index, overall, tasks)

    async def _produce(
        self,
        job: Job,
        lifecycle: Lifecycle,
        index: ManifestIndex,
        overall: anyio.CapacityLimiter,
        tasks: anyio.abc.TaskGroup,
    ) -> None:
        try:
            await self._produce_job(job, lifecycle, index, overall, tasks)
        except SpecError as error:
            # The plan was checked whole before anything was sent; a value file or an input
            # file that changes during the run can still break it here, after creates went out.
            raise BatchrunError(
                f"the spec's files changed while it ran: {error.issues[0]}; "
                "everything done so far is in the manifest"
            ) from None

    async def _produce_job(
        self,
        job: Job,
        lifecycle: Lifecycle,
        index: ManifestIndex,
        overall: anyio.CapacityLimiter,
        tasks: anyio.abc.TaskGroup,
    ) -> None:
        own = anyio.CapacityLimiter(min(job.concurrency or self.concurrency, self.concurrency))
        quota = self.survey.quota[job.id]
        for count, planned in enumerate(iter_plan(self.spec, jobs=[job.id])):
            if quota <= 0 or self._no_more(lifecycle, job):
                return
            if self.budget.reached:
                return
            if count % 512 == 511:
                await (
                    anyio.lowlevel.checkpoint()
                )  # a long walk past done keys must not starve others
            if not in_scope(planned, self.options) or not self.survey.sampled(planned.key):
                continue
            quota -= 1
            state = index.states.get(planned.key)
            where = self.survey.state(planned, state, self.run_dir)
            action = classify(where, state, self.options)
            if action is None:
                continue
            # A key new to this run carries nothing over: a record another kind of API made
            # (the sandbox's, for a run on a real API) is no history of this run's prediction.
            previous = index.record(planned.key) if state and where is not State.NEW else None
            work = Work(planned, action, previous)
            await own.acquire_on_behalf_of(work)
            await overall.acquire_on_behalf_of(work)
            if self._no_more(lifecycle, job) or not self._reserve(job, work):
                overall.release_on_behalf_of(work)
                own.release_on_behalf_of(work)
                return
            self.started += 1
            if action in (Action.CREATE, Action.RECONCILE):
                lifecycle.creates_first.starting(planned.key)
            tasks.start_soon(self._one, work, lifecycle, own, overall)

    def _no_more(self, lifecycle: Lifecycle, job: Job) -> bool:
        """Whether the job starts no more keys: the run is stopping, the API refused the
        token, or its answers stopped the job."""
        return (
            self.stopper.stopping
            or lifecycle.creates.halted is not None
            or lifecycle.creates.gate(job.id).stopped is not None
        )

    def _reserve(self, job: Job, work: Work) -> bool:
        """Hold the most this key's prediction can cost; False when the budget has no room."""
        if work.action not in (Action.CREATE, Action.RECONCILE, Action.POLL) or job.price is None:
            return True
        limits = bounds(work.planned.input, self.timeouts.get(job.id), self.counts.get(job.id))
        ceiling = job.price.ceiling(limits)
        if self.budget.reserve(work, ceiling):
            return True
        if self.budget.refused_at is not None and not self._said_budget:
            self._said_budget = True
            spent, reserved, _ = self.budget.refused_at
            self.progress.message(
                f"batchrun: the budget of {money(self.budget.limit or 0)} is reached"
                f" ({money(spent)} spent, {money(reserved)} reserved by predictions in flight,"
                f" {ESTIMATED}): no more predictions are created"
            )
        return False

    async def _one(
        self,
        work: Work,
        lifecycle: Lifecycle,
        own: anyio.CapacityLimiter,
        overall: anyio.CapacityLimiter,
    ) -> None:
        downloading = False

        async def settled() -> None:
            # The prediction is over; its files are not. Free its place in flight for the next
            # create once a download place is free: downloads never hold up predictions, and a
            # slow file host still slows creates down before links can pile up and expire.
            nonlocal downloading
            await self._downloads.acquire_on_behalf_of(work)
            downloading = True
            overall.release_on_behalf_of(work)
            own.release_on_behalf_of(work)

        try:
            await lifecycle.process(work, settled)
        except Withdrawn:
            # Never sent, or refused outright (NotCreated): nothing was created, and the key
            # is left for the next run, like those never started.
            self.started -= 1
        except AuthenticationError as error:
            # A poll, a lookup or an upload refused the token: no key is cancelled half-way;
            # the run ends with this error once the others have their answers.
            lifecycle.creates.halt(error)
        finally:
            self.budget.release(work)  # ended without a cost (refused, withdrawn, failed)
            lifecycle.creates_first.sent(work.planned.key)
            if downloading:
                self._downloads.release_on_behalf_of(work)
            else:
                overall.release_on_behalf_of(work)
                own.release_on_behalf_of(work)
