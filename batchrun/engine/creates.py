"""A key's create: sent in its turn under its job's gate, and tried again after a lost answer.

A refusal is recorded as the key's own (an `error` record) or its job's (the job stops, its keys
not created); a refused token halts the run's creates."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from batchrun.api.objects import Prediction
from batchrun.api.ratelimit import Withdrawn
from batchrun.api.retry import Retryable, RetryPolicy, with_retries
from batchrun.engine import answers, timing
from batchrun.engine.collector import Journal
from batchrun.engine.createsfirst import CreatesFirst
from batchrun.engine.gates import INVALID_STOPS_AFTER, JobGate, JobStopped, NotCreated
from batchrun.engine.preflight import describe_target
from batchrun.engine.reconcile import NoListEndpoint, Reconciler, request_sha256
from batchrun.engine.uploads import InputFileError, InputFiles
from batchrun.engine.work import Settings
from batchrun.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
)
from batchrun.manifest.records import Record, Status, utcnow
from batchrun.output_files import output_urls
from batchrun.planner.expand import PlannedPrediction
from batchrun.planner.lock import Lock
from batchrun.spec.target import Target

if TYPE_CHECKING:  # the HTTP stack loads with the client the runner makes (engine/runner.py)
    from batchrun.api.client import Client

# Creates whose answer was lost, per key per run, before the run gives up.
CREATE_TRIES = 4
# The longest wait before creating again after a lost answer: the API is likely back by then.
RECREATE_DELAY_CAP = 30.0
# Why a key whose create was withdrawn from the rate limiter's queue has no prediction.
NOT_SENT = "not sent: the run stopped before this create's turn"


class Creates:
    """What every create of a run shares: client, journal, the jobs' gates, the halt."""

    def __init__(
        self,
        client: Client,
        journal: Journal,
        settings: Settings,
        reconciler: Reconciler,
        lock: Lock | None,
        notify: Callable[[str], None],
        creates_first: CreatesFirst,
    ) -> None:
        self.client = client
        self.journal = journal
        self.settings = settings
        self.reconciler = reconciler
        self.lock = lock
        self.notify = notify
        self.creates_first = creates_first
        self.gates: dict[str, JobGate] = {}
        # Jobs whose target the pre-flight found: their creates need no probe.
        self.confirmed: set[str] = set()
        self.files = InputFiles(client)
        # The API refused the token: no more creates start, and the run ends with this error
        # once those under way have their answers (`halt`).
        self.halted: AuthenticationError | None = None
        # Per job, while 422s may still stop it: the keys refused so far, as each would be
        # recorded if the stop comes (not created), for the collector to take back.
        self._refused_first: dict[str, list[Record]] = {}

    async def create(
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
                    found, record = await self.find_lost(record, planned)
                    if found is not None:
                        gate.accepted()
                        born = timing.born(began, anyio.current_time())
                        noted = await self.note(record, found)
                        return noted, found, timing.deadline_of(noted, self.settings.timeouts), born
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
                    noted = await self.note(record, prediction)
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

    async def find_lost(
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

    async def note(self, record: Record, prediction: Prediction) -> Record:
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
