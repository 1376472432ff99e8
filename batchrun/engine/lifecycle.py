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
from batchrun.api.ratelimit import Withdrawn
from batchrun.api.retry import Retryable, RetryPolicy, with_retries
from batchrun.engine import answers, timing
from batchrun.engine.budget import Budget
from batchrun.engine.claims import PathClaims
from batchrun.engine.collector import Journal
from batchrun.engine.createsfirst import CreatesFirst
from batchrun.engine.downloads import Downloads
from batchrun.engine.gates import INVALID_STOPS_AFTER, JobGate, JobStopped, NotCreated
from batchrun.engine.polling import PollSchedule, run_seconds
from batchrun.engine.preflight import describe_target
from batchrun.engine.reconcile import NoListEndpoint, Reconciler, request_sha256
from batchrun.engine.uploads import InputFileError, InputFiles
from batchrun.engine.work import Action, Settings, Work
from batchrun.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
)
from batchrun.humanize import human_seconds
from batchrun.manifest.records import Record, Status, utcnow
from batchrun.output_files import output_urls
from batchrun.planner.expand import PlannedPrediction
from batchrun.planner.lock import Lock
from batchrun.planner.naming import JobNamers
from batchrun.spec.target import Target

if TYPE_CHECKING:  # the HTTP stack loads with the client the runner makes (engine/runner.py)
    from batchrun.api.client import Client

CREATE_TRIES = 4
# The longest wait before creating again after a lost answer: the API is likely back by then.
RECREATE_DELAY_CAP = 30.0
VANISHED_AFTER = 3  # 404s in a row on a poll before a prediction counts as gone
DATA_REMOVED = (
    "the API removed this prediction's output before batchrun could download it "
    "(Replicate keeps an API prediction's data for an hour); --retry-failed predicts it again"
)  # creates whose answer was lost, per key per run, before the run gives up
# Why a key whose create was withdrawn from the rate limiter's queue has no prediction.
NOT_SENT = "not sent: the run stopped before this create's turn"


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
        self.gates: dict[str, JobGate] = {}
        # Jobs whose target the pre-flight found: their creates need no probe.
        self.confirmed: set[str] = set()
        self.lock = lock
        self.journal = journal
        self.settings = settings
        self.reconciler = reconciler
        self.schedule = PollSchedule()
        self.files = InputFiles(client)
        self.claims = PathClaims()
        self.creates_first = CreatesFirst()
        self.downloads = Downloads(
            client, journal, namers, settings, self.claims, self.creates_first, self.notify
        )
        # The API refused the token: no more creates start, and the run ends with this error
        # once those under way have their answers (`halt`).
        self.halted: AuthenticationError | None = None
        # Per job, while 422s may still stop it: the keys refused so far, as each would be
        # recorded if the stop comes (not created), for the collector to take back.
        self._refused_first: dict[str, list[Record]] = {}

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
            deadline = self._deadline_of(record)
            prediction = await self._poll(
                record, record.prediction_id, elapsed=float("inf"), deadline=deadline
            )
        elif work.action is Action.RECONCILE:
            prediction, record = await self._find_lost(record, work.planned)
            if prediction is not None:
                self.creates_first.sent(work.planned.key)  # found: nothing will be created
                record = await self._note(record, prediction)
        if prediction is None:
            created = await self._create(work.planned, record, work.previous)
            if created is None:
                return
            record, prediction, deadline, born = created
            if not prediction.terminal:
                # Its age counts from its creation, not from now: writing its id down (durably)
                # took a moment of it already.
                age = anyio.current_time() - born
                prediction = await self._poll(record, prediction.id, elapsed=age, deadline=deadline)
        elif not prediction.terminal:
            deadline = self._deadline_of(record)
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

    def _deadline_of(self, record: Record) -> float | None:
        """When a prediction created earlier (by the API's clock) runs past its job's timeout,
        on this run's clock."""
        timeout = self.settings.timeouts.get(record.job)
        if timeout is None:
            return None
        age = run_seconds(record.created_at, utcnow()) or 0.0
        return anyio.current_time() + max(0.0, timeout - age)

    async def _create(
        self, planned: PlannedPrediction, record: Record, previous: Record | None
    ) -> tuple[Record, Prediction, float | None, float] | None:
        """Create the key's prediction: (its record, the prediction, when its timeout runs out,
        when it was created, both by the event loop's clock), or None when the API
        refused this key's input (an `error` record). A create refused for a reason that is not
        the key's own records the key as not created and raises NotCreated (JobStopped for a job
        the answers stopped); a refused token also halts the run (see `halt`)."""
        flagged_before = previous is not None and previous.possible_duplicate
        try:
            sent = await self.files.resolve(planned.input)
        except (InvalidRequestError, NotFoundError, InputFileError) as error:
            # This key's input cannot be sent (a file gone, an upload refused): its record
            # says so, and the other keys go on.
            await self.journal.write(
                record.replace(status=Status.ERROR, error=str(error), completed_at=utcnow()),
                final=True,
            )
            return None
        sha = request_sha256(sent)
        target = self.lock.resolve(planned.target) if self.lock else planned.target
        gate = self.gate(planned.job)
        # A create whose answer was lost is tried again (after looking for what it made) on
        # api/retry.py's backoff, which owns every wait between tries.
        policy = RetryPolicy(
            attempts=CREATE_TRIES,
            backoff_base=self.settings.recreate_delay,
            backoff_cap=RECREATE_DELAY_CAP,
        )

        tries = 0

        async def create_once() -> tuple[Record, Prediction, float | None, float] | None:
            nonlocal record, tries
            tries += 1
            before = record
            async with gate.turn() as probe:
                if self.halted is not None and tries == 1:
                    raise NotCreated(str(self.halted))
                # A new prediction: nothing of an earlier attempt's outcome carries over, but
                # what the key's earlier predictions cost stays counted.
                record = record.replace(
                    cost=None,
                    price=None,
                    cost_before=record.spent,
                    status=Status.SUBMITTING,
                    prediction_id=None,
                    version=None,
                    output=None,
                    files=(),
                    missing=(),
                    error=None,
                    metrics={},
                    attempts=record.attempts + 1,
                    request_sha256=sha,
                    api=self.settings.api,
                    created_at=utcnow(),
                    started_at=None,
                    completed_at=None,
                    not_created=False,
                )
                await self.journal.write(record, durable=True)
                self.creates_first.sent(planned.key)
                # A probe asks for no wait: its answer decides for the job's other creates.
                wait = 0 if probe else self.settings.wait
                timeout = self.settings.timeouts.get(planned.job)
                wait = timing.wait_within(wait, timeout)
                began = anyio.current_time()

                def sending() -> None:  # the last attempt's: its turn under the limit came
                    nonlocal began
                    began = anyio.current_time()

                try:
                    prediction = await self.client.create(
                        target, sent, wait=wait, cancel_after=timing.cancel_after(timeout),
                        on_send=sending,
                    )  # fmt: skip
                except Withdrawn:
                    # Stopped while waiting for its turn: nothing was sent.
                    await self._not_created(planned, before, previous, NOT_SENT)
                    raise
                except AuthenticationError as error:
                    # Refused outright: nothing was created, so nothing may look half-sent,
                    # and no other create can fare better.
                    await self._not_created(planned, record, previous, str(error))
                    self.halt(error)
                    raise NotCreated(str(error)) from None
                except NotFoundError as error:
                    known = planned.job in self.confirmed
                    text = f"{str(error).rstrip('.')}; {self._no_such_target(target, known)}"
                    if gate.stopped is None:
                        gate.not_found(text)
                        self.notify(
                            f"batchrun: stopped job '{planned.job}' after one create: {text}"
                        )
                    await self._not_created(planned, record, previous, text)
                    raise JobStopped(planned.job, gate.stopped or text) from None
                except InvalidRequestError as error:
                    await self._invalid(planned, record, previous, gate, error, flagged_before)
                    return None
                except OutcomeUnknownError as error:
                    found, record = await self._find_lost(record, planned)
                    if found is not None:
                        gate.accepted()
                        born = timing.born(began, anyio.current_time())
                        noted = await self._note(record, found)
                        return noted, found, self._deadline_of(noted), born
                    raise Retryable(error) from None
                else:
                    gate.accepted()
                    self._refused_first.pop(planned.job, None)  # they stay refused (`error`)
                    deadline = None
                    held = anyio.current_time() - began
                    if timeout is not None:
                        # The timeout counts from the create; the API held it for `wait` at most.
                        deadline = anyio.current_time() + timeout - min(held, float(wait or 0))
                    born = timing.born(began, anyio.current_time())
                    noted = await self._note(record, prediction)
                    return noted, prediction, deadline, born

        return await with_retries(create_once, policy)

    def halt(self, error: AuthenticationError) -> None:
        """The API refused the token: start no more creates, withdraw those waiting for their
        turn (nothing of theirs was sent), and let those sent have their answers, so that no
        key is left `submitting` for a create that was refused. The runner raises `error` once
        every task has ended."""
        if self.halted is None:
            self.halted = error
            self.client.create_limiter.withdraw_all()

    async def _invalid(
        self,
        planned: PlannedPrediction,
        record: Record,
        previous: Record | None,
        gate: JobGate,
        error: InvalidRequestError,
        flagged_before: bool,
    ) -> None:
        """A 4xx that names the request: the key's own mistake (an `error` record), unless it
        is the job's, by the gate's rule: then this key and those refused alike before it are
        not created, and the job stops (JobStopped)."""
        job = planned.job
        if gate.stopped is not None:
            await self._not_created(planned, record, previous, str(error))
            raise JobStopped(job, gate.stopped)
        unsent = self._unsent(planned, record, previous, str(error))
        if gate.invalid(error.invalid_fields or (error.detail,), str(error)):
            self.notify(
                f"batchrun: stopped job '{job}': its first"
                f" {INVALID_STOPS_AFTER} creates were refused alike: {error}"
            )
            for earlier in self._refused_first.pop(job, []):
                await self.journal.write(earlier, retracted=True)
            await self.journal.write(unsent, withdrawn=True)
            raise JobStopped(job, str(error))
        await self._refused(record, str(error), flagged_before)
        if gate.may_stop_for_invalid():
            self._refused_first.setdefault(job, []).append(unsent)
        else:
            self._refused_first.pop(job, None)

    def _unsent(
        self, planned: PlannedPrediction, record: Record, previous: Record | None, why: str
    ) -> Record:
        """The key's record when its create made nothing: an outcome from an earlier run (a
        failed prediction tried again, a stale one run again) stays as it was; any other key
        is recorded as not created, so it counts as not started.

        A possible duplicate stays flagged: a lost create that could not be looked up may
        still exist, and the next run creates the key again.
        """
        if previous is not None and previous.terminal and not previous.not_created:
            return answers.record_for(planned, previous, self.settings.api)
        return record.replace(
            status=Status.ERROR,
            not_created=True,
            error=why,
            prediction_id=None,
            version=None,
            output=None,
            files=(),
            missing=(),
            metrics={},
            request_sha256=None,
            started_at=None,
            completed_at=utcnow(),
        )

    async def _not_created(
        self, planned: PlannedPrediction, record: Record, previous: Record | None, why: str
    ) -> None:
        await self.journal.write(self._unsent(planned, record, previous, why), withdrawn=True)

    def gate(self, job: str) -> JobGate:
        """The job's create gate (see `batchrun.engine.gates`)."""
        gate = self.gates.get(job)
        if gate is None:
            gate = self.gates[job] = JobGate(job, confirmed=job in self.confirmed)
        return gate

    def stopped_jobs(self) -> dict[str, str]:
        """The jobs whose creates were stopped by the API's answers, with the reason."""
        return {job: gate.stopped for job, gate in self.gates.items() if gate.stopped}

    def _no_such_target(self, target: Target, confirmed: bool) -> str:
        base = self.client.base_url
        what = describe_target(target)
        proxy = "a proxy serves the API under a path, like https://host/replicate"
        if confirmed:
            # The pre-flight found the target at this base URL: the route is what is missing.
            return (
                f"the API at {base} knows the {what} but has no predictions endpoint for it;"
                f" check the base URL ({proxy})"
            )
        # A 404 says no more than "not here": either reading may be the right one.
        return (
            f"no {what} at {base}, or no predictions endpoint there; check the name in the"
            f" spec, and the base URL ({proxy})"
        )

    async def _refused(self, record: Record, error: str, flagged_before: bool) -> None:
        # A definite refusal (a 4xx other than 408/429) created nothing. If this run flagged
        # the key (an earlier create's answer was lost), at most that one prediction exists:
        # nothing can have run twice. A flag from an earlier run stays: it counts older creates.
        await self.journal.write(
            record.replace(
                status=Status.ERROR,
                error=error,
                completed_at=utcnow(),
                possible_duplicate=record.possible_duplicate and flagged_before,
            ),
            final=True,
        )

    async def _find_lost(
        self, record: Record, planned: PlannedPrediction
    ) -> tuple[Prediction | None, Record]:
        """The prediction a lost create made, if any. Where the API cannot list predictions,
        the key is flagged: creating it again may run it twice."""
        target = self.lock.resolve(planned.target) if self.lock else planned.target
        try:
            found = await self.reconciler.find(
                target, record.request_sha256 or "", record.created_at
            )
        except NoListEndpoint:
            return None, record.replace(possible_duplicate=True)
        return found, record

    async def _note(self, record: Record, prediction: Prediction) -> Record:
        self.reconciler.claim(prediction.id)
        record = answers.apply(record, prediction)
        if record.status == Status.SUCCEEDED:
            # Until its files are in place, a succeeded record lists them as missing: a crash
            # now leaves a key the next run downloads, not one it believes complete.
            urls = output_urls(record.output)
            record = answers.too_many_files(record, urls) or record.replace(missing=tuple(urls))
        # Durable: nothing else happens to a prediction (a poll, a download, a file written in
        # a worker thread) until its id is in the journal, so a kill -9 at any later moment
        # leaves a key the next run picks up by id, never one it has to look for.
        await self.journal.write(record, durable=True)
        return record

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
