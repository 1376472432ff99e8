"""One prediction, from its plan to its files: create, poll, download, and record every step.

Every change of state goes to the journal; a prediction that fails, is canceled or aborted, or is
refused by the API ends as a record, never as an exception. What escapes `Lifecycle.process` is
fatal to the whole run (a bad token, an unreachable API, a full disk), and by then the manifest
already holds everything needed to resume.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from batchrun.api.objects import Prediction
from batchrun.engine import answers, timing
from batchrun.engine.budget import Budget
from batchrun.engine.claims import PathClaims
from batchrun.engine.collector import Journal
from batchrun.engine.creates import Creates
from batchrun.engine.createsfirst import CreatesFirst
from batchrun.engine.downloads import Downloads
from batchrun.engine.polling import PollSchedule, run_seconds
from batchrun.engine.reconcile import Reconciler
from batchrun.engine.work import Action, Settings, Work
from batchrun.errors import (
    NotFoundError,
)
from batchrun.humanize import human_seconds
from batchrun.manifest.records import Record, Status
from batchrun.output_files import output_urls
from batchrun.planner.lock import Lock
from batchrun.planner.naming import JobNamers

if TYPE_CHECKING:  # the HTTP stack loads with the client the runner makes (engine/runner.py)
    from batchrun.api.client import Client

VANISHED_AFTER = 3  # 404s in a row on a poll before a prediction counts as gone
DATA_REMOVED = (
    "the API removed this prediction's output before batchrun could download it "
    "(Replicate keeps an API prediction's data for an hour); --retry-failed predicts it again"
)


async def _nothing() -> None:
    pass


class Lifecycle:
    """What every prediction task of a run shares: client, journal, namer, schedules."""

    def __init__(
        self,
        client: Client,
        journal: Journal,
        namers: JobNamers,
        settings: Settings,
        reconciler: Reconciler,
        lock: Lock | None = None,
        notify: Callable[[str], None] | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.client = client
        self.budget = budget or Budget()
        self.notify = notify or (lambda text: None)
        self.journal = journal
        self.settings = settings
        self.schedule = PollSchedule()
        self.claims = PathClaims()
        self.creates_first = CreatesFirst()
        self.downloads = Downloads(
            client, journal, namers, settings, self.claims, self.creates_first, self.notify
        )
        self.creates = Creates(
            client, journal, settings, reconciler, lock, self.notify, self.creates_first
        )

    async def process(self, work: Work, settled: Callable[[], Awaitable[None]] = _nothing) -> None:
        """Take one key from wherever the manifest left it to a terminal record.

        `settled` is awaited once the prediction itself is over and only its downloads remain:
        the runner frees its place among the predictions in flight then.
        """
        try:
            await self._process(work, settled)
        finally:
            self.claims.release(work.planned.key)

    async def _process(self, work: Work, settled: Callable[[], Awaitable[None]]) -> None:
        record = answers.record_for(work.planned, work.previous, self.settings.api)
        if work.action is Action.MOVE:
            await settled()
            await self.downloads.move(record)
            return
        if work.action is Action.DOWNLOAD:
            # The output is kept in the manifest while files are missing; otherwise the
            # recorded files name their URLs.
            if record.output is not None:
                urls = output_urls(record.output)
            else:
                urls = [f.url for f in record.files] + list(record.missing)
            await settled()
            await self.downloads.finish(record, urls, downloaded=record.files)
            return
        prediction: Prediction | None = None
        deadline: float | None = None
        if work.action is Action.POLL:
            assert record.prediction_id is not None
            deadline = timing.deadline_of(record, self.settings.timeouts)
            prediction = await self._poll(
                record, record.prediction_id, elapsed=float("inf"), deadline=deadline
            )
        elif work.action is Action.RECONCILE:
            prediction, record = await self.creates.find_lost(record, work.planned)
            if prediction is not None:
                self.creates_first.sent(work.planned.key)  # found: nothing will be created
                record = await self.creates.note(record, prediction)
        if prediction is None:
            created = await self.creates.create(work.planned, record, work.previous)
            if created is None:
                return
            record, prediction, deadline, born = created
            if not prediction.terminal:
                # Its age counts from its creation, not from now: writing its id down (durably)
                # took a moment of it already.
                age = anyio.current_time() - born
                prediction = await self._poll(record, prediction.id, elapsed=age, deadline=deadline)
        elif not prediction.terminal:
            deadline = timing.deadline_of(record, self.settings.timeouts)
            prediction = await self._poll(
                record, prediction.id, elapsed=float("inf"), deadline=deadline
            )
        record = answers.apply(record, prediction)
        if answers.data_removed(prediction):
            record = record.replace(status=Status.FAILED, error=DATA_REMOVED)
        if timing.timed_out(prediction, deadline):
            timeout = human_seconds(self.settings.timeouts[record.job])
            record = record.replace(
                error=f"canceled by batchrun: it ran longer than the job's timeout ({timeout})"
            )
        seconds = run_seconds(prediction.created_at, prediction.completed_at)
        if seconds is not None:
            self.schedule.observe(record.job, seconds)
        urls = output_urls(record.output) if record.status == Status.SUCCEEDED else []
        record = answers.too_many_files(record, urls) or record
        record = self._priced(record, len(urls))
        self.budget.settle(work, record.cost or 0.0)
        if record.status != Status.SUCCEEDED:
            await self.journal.write(record, final=True)
            return
        await settled()
        await self.downloads.finish(record, urls, downloaded=())

    def _priced(self, record: Record, files: int) -> Record:
        """The record with what its prediction cost at the job's price (if it has one)."""
        price = self.settings.prices.get(record.job)
        if price is None:
            return record
        succeeded = record.status == Status.SUCCEEDED
        cost = price.cost(record.metrics, files=files, succeeded=succeeded)
        return record.replace(cost=cost, price=price.to_json())

    async def _poll(
        self, record: Record, prediction_id: str, *, elapsed: float, deadline: float | None = None
    ) -> Prediction:
        """Poll until the prediction ends; past `deadline` (its timeout), cancel it first."""
        last_status: str = record.status  # the API's word, which may be new to batchrun
        not_found = 0
        with self.schedule.poller(record.job, elapsed) as poller:
            while True:
                if deadline is None:
                    await poller.wait()
                else:
                    with anyio.move_on_after(deadline - anyio.current_time()):
                        await poller.wait()
                    if anyio.current_time() >= deadline:
                        deadline = None
                        canceled = await self.client.cancel(prediction_id)
                        if canceled.terminal:
                            return canceled
                        continue
                try:
                    prediction = await self.client.get(prediction_id)
                except NotFoundError as error:
                    # A proxy may not know a prediction the instant it is created: only a few
                    # 404s in a row mean it is gone.
                    not_found += 1
                    if not_found >= VANISHED_AFTER:
                        return answers.vanished(prediction_id, error)
                    continue
                not_found = 0
                if prediction.terminal:
                    return prediction
                if prediction.status != last_status:
                    last_status = prediction.status
                    record = answers.apply(record, prediction)
                    await self.journal.write(record)
