"""One prediction, from its plan to its files: create, poll, download, and record every step.

Every change of state goes to the journal; a prediction that fails, is canceled or aborted, or is
refused by the API ends as a record, never as an exception. What escapes `Lifecycle.process` is
fatal to the whole run (a bad token, an unreachable API, a full disk), and by then the manifest
already holds everything needed to resume.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from batchrun import safefs
from batchrun.api.objects import Prediction
from batchrun.api.ratelimit import Withdrawn
from batchrun.api.retry import Retryable, RetryPolicy, with_retries
from batchrun.cost import Price
from batchrun.engine.budget import Budget
from batchrun.engine.collector import Journal
from batchrun.engine.gates import INVALID_STOPS_AFTER, JobGate, JobStopped, NotCreated
from batchrun.engine.moves import move_file
from batchrun.engine.polling import PollSchedule, run_seconds
from batchrun.engine.preflight import describe_target
from batchrun.engine.reconcile import NoListEndpoint, Reconciler, request_sha256
from batchrun.engine.uploads import InputFileError, InputFiles
from batchrun.errors import (
    ApiError,
    AuthenticationError,
    DownloadError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    StorageError,
)
from batchrun.humanize import human_seconds
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.records import API_STATUSES, Api, FileRecord, Record, Status, utcnow
from batchrun.manifest.state import file_intact, moves
from batchrun.output_files import decode_data_uri, is_data_uri, output_urls, recorded_url
from batchrun.planner.expand import PlannedPrediction
from batchrun.planner.lock import Lock
from batchrun.planner.naming import JobNamers, NamingError, output_names
from batchrun.spec.target import Target

if TYPE_CHECKING:  # the HTTP stack loads with the client the runner makes (engine/runner.py)
    from batchrun.api.client import Client

# The statuses of the API's predictions a record keeps as they are.
_BY_VALUE = {status.value: status for status in API_STATUSES}
CREATE_TRIES = 4
# Files one prediction may ask batchrun to download. Image models return a handful, a video
# model's frames a few hundred; an output listing 200,000 URLs is a hostile or broken server.
MAX_FILES_PER_PREDICTION = 1000
# The longest wait before creating again after a lost answer: the API is likely back by then.
RECREATE_DELAY_CAP = 30.0
# Replicate refuses a Cancel-After shorter than this; a shorter timeout is kept by a cancel only.
CANCEL_AFTER_MIN = 5.0
VANISHED_AFTER = 3  # 404s in a row on a poll before a prediction counts as gone
# A create answered within this many seconds was not held by the API: its prediction is new.
ROUND_TRIP = 0.5
# Said of a prediction whose files could not be named: its links are kept in the manifest.
LATER = (
    "; the links are kept: the next `run` fetches the files while they live (an hour on Replicate)"
)
DATA_REMOVED = (
    "the API removed this prediction's output before batchrun could download it "
    "(Replicate keeps an API prediction's data for an hour); --retry-failed predicts it again"
)  # creates whose answer was lost, per key per run, before the run gives up
# Why a key whose create was withdrawn from the rate limiter's queue has no prediction.
NOT_SENT = "not sent: the run stopped before this create's turn"


async def _nothing() -> None:
    pass


class Action(Enum):
    """What a planned key needs, given what the manifest says of it."""

    CREATE = "create"
    POLL = "poll"
    RECONCILE = "reconcile"
    DOWNLOAD = "download"
    MOVE = "move"  # rename recorded files to the paths a changed `files` template gives


@dataclass(frozen=True, slots=True, eq=False)
class Work:
    """One key's work in this run; compared by identity (it borrows capacity limiter tokens)."""

    planned: PlannedPrediction
    action: Action
    previous: Record | None = None  # the key's last record in the manifest, if any


@dataclass
class Settings:
    run_dir: Path
    wait: int | None
    download: bool
    max_file_bytes: int | None
    recreate_delay: float = 1.0  # before creating again after a lost answer; doubles each time
    api: Api | None = None  # the API this run creates on: every record it creates says so
    hashed: HashedFiles | None = None  # the folder's files as last hashed (manifest/filestat.py)
    prices: Mapping[str, Price] = field(default_factory=dict)  # job → its price, if it has one
    timeouts: Mapping[str, float] = field(default_factory=dict)  # job → seconds, if it has one


class CreatesFirst:
    """Downloads give way while new predictions are waiting to be created.

    Predictions of a batch finish together, and each one's next create matters more than its
    files, whose links live an hour: a create sent late holds a place idle for the whole next
    prediction. So a download first waits (briefly, never long) until no task is between "my
    place came free" and "my create is on its way".
    """

    def __init__(self, patience: float = 0.25) -> None:
        self._waiting: set[str] = set()
        self._quiet = anyio.Event()
        self._quiet.set()
        self._patience = patience

    def starting(self, key: str) -> None:
        """The prediction of `key` will be created soon."""
        if not self._waiting:
            self._quiet = anyio.Event()
        self._waiting.add(key)

    def sent(self, key: str) -> None:
        """The prediction of `key` is being created (or will not be): nothing to wait for."""
        self._waiting.discard(key)
        if not self._waiting:
            self._quiet.set()

    async def give_way(self) -> None:
        """Wait until no create is pending, or for `patience` seconds at most."""
        if self._waiting:
            with anyio.move_on_after(self._patience):
                await self._quiet.wait()


class PathClaims:
    """Output paths handed out in this run: no two outputs may write one file.

    A template that names the key (`${key}`, the default) gives each key paths no other key's
    can equal (the plan's check of templates, planner/expand.py, relies on it too): such a
    key's claims are checked among its own outputs and dropped once it is done (`release`),
    so a run keeps nothing per finished prediction. Paths of other templates are kept to the end.
    """

    def __init__(self) -> None:
        self._owner: dict[str, tuple[str, int]] = {}  # templates without ${key}: path → owner
        self._own: dict[str, dict[str, int]] = {}  # key → its paths → output (with ${key})

    def claim(self, path: str, key: str, index: int, *, keyed: bool = False) -> None:
        """Take `path` for output `index` of `key` (`keyed`: the template names the key);
        NamingError if another output holds it."""
        if keyed:
            owner_key, owner_index = key, self._own.setdefault(key, {}).setdefault(path, index)
        else:
            owner_key, owner_index = self._owner.setdefault(path, (key, index))
        if owner_key != key:
            raise NamingError(
                f"the files template maps keys {owner_key} and {key} to one file {path!r}; "
                "add ${key} to `files`"
            )
        if owner_index != index:
            raise NamingError(
                f"the files template maps outputs {owner_index} and {index} of {key} to one "
                f"file {path!r}; add ${{index}} to `files`"
            )

    def release(self, key: str) -> None:
        """The key is done: its paths (of a template naming the key) need no guarding."""
        self._own.pop(key, None)


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
        self.namers = namers  # each job's files template
        self.settings = settings
        self.reconciler = reconciler
        self.schedule = PollSchedule()
        self.files = InputFiles(client)
        self.claims = PathClaims()
        self.creates_first = CreatesFirst()
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
        record = _record_for(work.planned, work.previous, self.settings.api)
        if work.action is Action.MOVE:
            await settled()
            await self._move(record)
            return
        if work.action is Action.DOWNLOAD:
            # The output is kept in the manifest while files are missing; otherwise the
            # recorded files name their URLs.
            if record.output is not None:
                urls = output_urls(record.output)
            else:
                urls = [f.url for f in record.files] + list(record.missing)
            await settled()
            await self._finish(record, urls, downloaded=record.files)
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
        record = _apply(record, prediction)
        if _data_removed(prediction):
            record = record.replace(status=Status.FAILED, error=DATA_REMOVED)
        if _timed_out(prediction, deadline):
            timeout = human_seconds(self.settings.timeouts[record.job])
            record = record.replace(
                error=f"canceled by batchrun: it ran longer than the job's timeout ({timeout})"
            )
        seconds = run_seconds(prediction.created_at, prediction.completed_at)
        if seconds is not None:
            self.schedule.observe(record.job, seconds)
        urls = output_urls(record.output) if record.status == Status.SUCCEEDED else []
        record = _too_many_files(record, urls) or record
        record = self._priced(record, len(urls))
        self.budget.settle(work, record.cost or 0.0)
        if record.status != Status.SUCCEEDED:
            await self.journal.write(record, final=True)
            return
        await settled()
        await self._finish(record, urls, downloaded=())

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
                wait = _wait_within(wait, timeout)
                began = anyio.current_time()

                def sending() -> None:  # the last attempt's: its turn under the limit came
                    nonlocal began
                    began = anyio.current_time()

                try:
                    prediction = await self.client.create(
                        target, sent, wait=wait, cancel_after=_cancel_after(timeout),
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
                        born = _born(began, anyio.current_time())
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
                    born = _born(began, anyio.current_time())
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
            return _record_for(planned, previous, self.settings.api)
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
        record = _apply(record, prediction)
        if record.status == Status.SUCCEEDED:
            # Until its files are in place, a succeeded record lists them as missing: a crash
            # now leaves a key the next run downloads, not one it believes complete.
            urls = output_urls(record.output)
            record = _too_many_files(record, urls) or record.replace(missing=tuple(urls))
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
                        return _vanished(prediction_id, error)
                    continue
                not_found = 0
                if prediction.terminal:
                    return prediction
                if prediction.status != last_status:
                    last_status = prediction.status
                    record = _apply(record, prediction)
                    await self.journal.write(record)

    def _intact(self, file: FileRecord) -> bool:
        if self.settings.hashed is not None:
            return self.settings.hashed.difference(file.path, file.bytes, file.sha256) is None
        return file_intact(self.settings.run_dir, file.path, file.bytes, file.sha256)

    async def _finish(
        self, record: Record, urls: list[str], downloaded: tuple[FileRecord, ...]
    ) -> None:
        """Download every file of `urls` that is not already in place; record the end."""
        if not self.settings.download:
            have = {f.url for f in downloaded}
            await self.journal.write(
                record.replace(missing=tuple(url for url in urls if url not in have)),
                final=True,
            )
            return
        await self.creates_first.give_way()
        files: list[FileRecord] = []
        missing: list[str] = []
        errors: list[str] = []
        have_by_url = {f.url: f for f in downloaded}
        names = output_names(record.output) if record.output is not None else {}
        kept = False  # whether a file could not be named: fixing `files` lets a run fetch it
        try:
            for index, url in enumerate(urls):
                present = have_by_url.get(url)
                if present is not None and self._intact(present):
                    files.append(present)
                    continue
                try:
                    files.append(await self._download(record, index, url, names.get(url)))
                    if self.settings.hashed is not None:
                        self.settings.hashed.note(files[-1].path, files[-1].sha256)
                except DownloadError as error:
                    missing.append(url)
                    errors.append(str(error))
                    kept = kept or isinstance(error, NamingError)
        except StorageError as error:
            missing.extend(url for url in urls[len(files) + len(missing) :])
            await self.journal.write(
                record.replace(files=tuple(files), missing=tuple(missing), error=str(error)),
                final=True,
            )
            raise
        error_text = "; ".join(errors) + (LATER if kept else "") if errors else record.error
        done = record.replace(files=tuple(files), missing=tuple(missing), error=error_text)
        # Files kept from before may sit where an older template put them: the next run moves
        # those, so the template is recorded only once every file is where this one says.
        namer = self.namers(record.job)
        if not moves(done, namer):
            done = done.replace(files_template=namer.template)
        await self.journal.write(done, final=True)

    async def _move(self, record: Record) -> None:
        """Rename the key's files to the paths the current `files` template gives them, and
        record the new paths; a file that cannot move stays, and the run says why."""
        files = list(record.files)
        problems: list[str] = []
        namer = self.namers(record.job)
        for place, new in sorted(moves(record, namer).items()):
            old = files[place]
            try:
                self.claims.claim(new, record.key, place, keyed="key" in namer.variables)
            except NamingError as error:
                problems.append(f"{old.path} stays: {error}")
                continue
            why = await anyio.to_thread.run_sync(move_file, self.settings.run_dir, old.path, new)
            if why is not None:
                problems.append(f"{old.path} stays: {why}")
                continue
            files[place] = FileRecord(url=old.url, path=new, sha256=old.sha256, bytes=old.bytes)
        moved = record.replace(files=tuple(files))
        if problems:
            self.notify(f"batchrun: {record.key}: not moved: {'; '.join(problems)}")
        else:
            moved = moved.replace(files_template=namer.template)
        await self.journal.write(moved, final=True)

    async def _download(
        self, record: Record, index: int, url: str, name: str | None = None
    ) -> FileRecord:
        namer = self.namers(record.job)
        relative = namer.path_for(
            job=record.job,
            key=record.key,
            index=index,
            url=url,
            repeat=record.repeat,
            vars=record.vars,
            output=name,
        )
        self.claims.claim(relative, record.key, index, keyed="key" in namer.variables)
        if is_data_uri(url):
            data = decode_data_uri(url)
            digest = await anyio.to_thread.run_sync(
                _write_atomically, self.settings.run_dir / relative, self.settings.run_dir, data
            )
            return FileRecord(url=recorded_url(url), path=relative, sha256=digest, bytes=len(data))
        # As text: a Path would intern the file's name (see `Downloader.fetch`).
        dest = os.path.join(self.settings.run_dir, relative)
        got = await self.client.download(
            url, dest, max_bytes=self.settings.max_file_bytes, root=self.settings.run_dir
        )
        return FileRecord(url=url, path=relative, sha256=got.sha256, bytes=got.bytes)


def _born(sent: float, answered: float) -> float:
    """When a prediction was created, by the event loop's clock, from when its create was sent
    and answered: an answer within ROUND_TRIP is taken as made at once (a look planned for an
    age then comes that little late, never early); one the API held longer (`Prefer: wait`)
    that much earlier, so that its first look is not late by the whole hold."""
    return min(answered, sent + ROUND_TRIP)


def _wait_within(wait: int | None, timeout: float | None) -> int | None:
    """A create's `Prefer: wait` that ends by the timeout, so the cancel can come in time."""
    if timeout is None or wait is None or wait <= timeout:
        return wait
    return int(timeout)  # 0 for a timeout under a second: the create answers at once


def _cancel_after(timeout: float | None) -> str | None:
    """The `Cancel-After` header for a timeout, when the API can take it: the API then ends the
    prediction at the deadline itself, so what it ran is bounded even if a cancel comes late."""
    if timeout is None or timeout < CANCEL_AFTER_MIN or timeout != int(timeout):
        return None
    return f"{int(timeout)}s"


def _timed_out(prediction: Prediction, deadline: float | None) -> bool:
    """Whether a canceled prediction was ended by its timeout (batchrun's cancel, or the API's
    at the Cancel-After deadline)."""
    if prediction.status != Status.CANCELED or deadline is None:
        return False
    return anyio.current_time() >= deadline


def _too_many_files(record: Record, urls: list[str]) -> Record | None:
    """The record failed, when its output lists more files than one prediction may fetch."""
    if len(urls) <= MAX_FILES_PER_PREDICTION:
        return None
    return record.replace(
        status=Status.FAILED,
        missing=(),
        error=f"the output lists {len(urls):,} files, more than the limit of "
        f"{MAX_FILES_PER_PREDICTION:,}; none were downloaded (the manifest keeps the output)",
    )


def _record_for(planned: PlannedPrediction, previous: Record | None, api: Api | None) -> Record:
    """The key's record as this run starts on it: the plan's view, the manifest's history (a
    key without one is this run's, on `api`; one with history keeps the API it was made on)."""
    record = Record.planned(planned)
    if previous is None:
        return record.replace(api=api)
    return record.replace(
        status=previous.status,
        prediction_id=previous.prediction_id,
        version=previous.version,
        output=previous.output,
        files=previous.files,
        error=previous.error,
        metrics=previous.metrics,
        created_at=previous.created_at,
        started_at=previous.started_at,
        completed_at=previous.completed_at,
        attempts=previous.attempts,
        request_sha256=previous.request_sha256,
        possible_duplicate=previous.possible_duplicate,
        missing=previous.missing,
        files_template=previous.files_template,
        api=previous.api,
        cost=previous.cost,
        price=previous.price,
        cost_before=previous.cost_before,
    )


def _apply(record: Record, prediction: Prediction) -> Record:
    # A status the API may add one day reads as still running: polling goes on until it ends.
    status = _BY_VALUE.get(prediction.status, Status.PROCESSING)
    return record.replace(
        status=status,
        prediction_id=prediction.id,
        version=prediction.version or record.version,
        output=prediction.output if prediction.terminal else None,  # as the API sent it
        error=prediction.error if status != Status.SUCCEEDED else None,
        metrics=prediction.metrics,
        created_at=prediction.created_at or record.created_at,
        started_at=prediction.started_at,
        completed_at=prediction.completed_at or (utcnow() if prediction.terminal else None),
    )


def _data_removed(prediction: Prediction) -> bool:
    """A success whose output is gone (`data_removed`): nothing is left to download."""
    return (
        prediction.status == Status.SUCCEEDED
        and prediction.output is None
        and prediction.raw.get("data_removed") is True
    )


def _vanished(prediction_id: str, error: ApiError) -> Prediction:
    # The API forgot a prediction we created (some proxies expire them): a record, not a crash.
    return Prediction(
        id=prediction_id,
        status=Status.FAILED,
        model="",
        version="",
        input={},
        output=None,
        error=f"the API no longer knows prediction {prediction_id}: {error}",
        logs="",
        metrics={},
        created_at=None,
        started_at=None,
        completed_at=None,
        urls={},
        raw={},
    )


def _write_atomically(dest: Path, root: Path, data: bytes) -> str:
    safefs.ensure_folder(dest.parent, root)
    safefs.write_atomically(dest, data, root, durable=True)
    return hashlib.sha256(data).hexdigest()
