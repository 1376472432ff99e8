"""`run`: turn a plan into finished predictions, downloaded files and a manifest.

One anyio task group. Per job, a producer walks the plan and starts a task per key that needs
work, once a place is free under the job's cap and the run's cap (capacity limiters held while
the prediction runs). A prediction that is over hands its place on as soon as it holds one of
as many download places, so downloads overlap the next creates without ever piling up. Every
task hands its records to the one collector task, which writes the manifest and the tally.

    producers (one per job) ─► prediction tasks (≤ concurrency) ─► journal ─► collector ─► manifest

Creates go through a rate limiter (600/min by default); every other API request through a second
budget (3000/min); both are the account's, so a shard of N keeps to 1/N of them unless told
`shard_rate="whole"`. Stopping: `Stopper.request()` (the first Ctrl-C) stops the producers and lets
what is in flight finish (creates still waiting for their turn are withdrawn); a second request,
or `Stopper.leave()` (SIGTERM), cancels everything at once. Either way the manifest
knows every prediction id, and the next run picks them up without creating them again.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from batchrun.api.endpoint import DEFAULT_BASE_URL, normalize_base_url, resolve_token
from batchrun.api.ratelimit import polite
from batchrun.api.retry import RetryPolicy
from batchrun.api.stats import ClientStats
from batchrun.engine import signals
from batchrun.engine.budget import Budget
from batchrun.engine.collector import Collector, Tally, open_journal
from batchrun.engine.lifecycle import Lifecycle
from batchrun.engine.preflight import fingerprint, preflight, record, recorded
from batchrun.engine.producers import Producers
from batchrun.engine.reconcile import Reconciler
from batchrun.engine.runtypes import NoProgress, Progress, RunOptions, RunSummary
from batchrun.engine.signals import Stopper
from batchrun.engine.survey import Survey, selection_of, survey
from batchrun.engine.work import Action, Settings
from batchrun.errors import (
    BatchrunError,
    SpecError,
    StorageError,
    UsageError,
)
from batchrun.humanize import human_bytes, shown_path
from batchrun.manifest.filestat import HashedFiles
from batchrun.manifest.preflight import schema_counts
from batchrun.manifest.reader import ManifestIndex, manifest_name, manifest_paths
from batchrun.manifest.records import Api
from batchrun.manifest.table import TableStates, load_index
from batchrun.manifest.writer import ManifestWriter, exclusive, new_header, says_already
from batchrun.planner.lock import Lock, read_lock
from batchrun.planner.naming import JobNamers
from batchrun.spec.load import Spec

if TYPE_CHECKING:
    # Loaded where a client is made (`_client`, `_asked_api`, `_preflight`): a run that finds
    # nothing to send never loads the HTTP stack (issue 22: httpx was a quarter of a no-op run).
    from batchrun.api.client import Client

RETRY_NOTE_EVERY = 10.0  # seconds between two "retrying" notes on the progress display
# The pre-flight's questions are retried a little (a blip), never for long: an API that keeps
# failing them is told by the creates, with the run's full patience.
PREFLIGHT_RETRIES = RetryPolicy(attempts=3, backoff_base=0.25, backoff_cap=2.0)
# A manifest this large takes a second or more to read (about 28 MB/s here): say so first.
LOAD_NOTE_BYTES = 32 << 20


def run(spec: Spec, options: RunOptions, *, progress: Progress | None = None) -> RunSummary:
    """Run a spec to the end (blocking); see `run_async`."""
    stopper = Stopper()

    async def main() -> RunSummary:
        return await run_async(spec, options, progress=progress, stopper=stopper)

    if not options.handle_signals:
        return anyio.run(main)
    with signals.holding() as late:
        summary = anyio.run(main)
        if late:  # a SIGTERM after the run stopped watching, while its event loop closed
            summary.interrupted = True
        return summary


async def run_async(
    spec: Spec,
    options: RunOptions,
    *,
    progress: Progress | None = None,
    stopper: Stopper | None = None,
) -> RunSummary:
    """Run what the plan says is left, and return what happened."""
    runner = _Runner(spec, options, progress or NoProgress(), stopper or Stopper())
    return await runner.run()


class _Runner:
    def __init__(self, spec: Spec, options: RunOptions, progress: Progress, stopper: Stopper):
        self.spec = spec
        self.options = options
        self.progress = progress
        self.stopper = stopper
        self.run_dir = (options.out or spec.output).resolve()
        self.concurrency = options.concurrency or spec.concurrency
        # A rate is the account's: N shards on one account each take 1/N of it (unless "whole").
        shards = options.shard[1] if options.shard else 1
        self.rate_shared_by = shards if options.shard_rate == "shared" else 1
        self.account_rate = options.rate or spec.rate
        self.rate = self.account_rate.shared_by(self.rate_shared_by)
        self.requests = (options.requests or spec.requests).shared_by(self.rate_shared_by)
        self.survey = Survey()
        self._last_retry_note = float("-inf")
        self.lifecycle: Lifecycle | None = None
        self.confirmed: set[str] = set()  # jobs whose target the pre-flight confirmed
        self.api: Api | None = None  # known before the survey: it decides what counts as done
        self.producers: Producers | None = None  # once the run knows what is left to do
        self.budget = Budget(options.budget if options.budget is not None else spec.budget)
        self.timeouts = {
            job.id: timeout
            for job in spec.jobs
            if (timeout := options.timeout or job.timeout) is not None
        }

    async def run(self) -> RunSummary:
        began = time.monotonic()
        path = self.run_dir / manifest_name(self.options.shard)
        with exclusive(path):
            # Signals are watched from the first step to the last: a Ctrl-C while the manifest
            # loads or files are checked stops the run there, and none falls through to
            # Python's default handling while records are still being written.
            failure: BatchrunError | None = None
            async with anyio.create_task_group() as guard:
                watcher = anyio.CancelScope()
                if self.options.handle_signals:
                    await guard.start(self._watch_signals, watcher)
                try:
                    summary = await self._run(began, path)
                except BatchrunError as error:
                    failure = error  # raised below, not wrapped in this group's ExceptionGroup
                finally:
                    watcher.cancel()
        if failure is not None:
            raise failure
        # A signal may have come after the summary was drawn up, while the run wound down.
        summary.interrupted = self.stopper.stopping
        return summary

    async def _run(self, began: float, path: Path) -> RunSummary:
        with self.stopper.phase(leave_on_first=True) as early:
            known = self._known_api()
            recorded = None if known is not None else self._recorded_api(path)
            self.api = api = known or recorded or await self._asked_api()
            self._note_a_long_load()
            index = await anyio.to_thread.run_sync(
                functools.partial(load_index, self.run_dir, save=True), abandon_on_cancel=True
            )
            lock = read_lock(self.spec.path)
            hashed = HashedFiles(self.run_dir, deep=self.options.deep)
            self.survey = await self._survey(index, lock, hashed, api)
            if recorded is not None and self.survey.total_work:
                # Something to send: the journal's word is not taken for it. The API is asked,
                # and if it is the sandbox now, every key is placed again for the sandbox.
                self.api = api = await self._asked_api()
                if api.sandbox:
                    self.survey = await self._survey(index, lock, hashed, api)
            self.budget.spent = index.spent  # the folder's budget counts every run's spending
        tally = Tally(total=self.survey.total_work, skipped=self.survey.done)
        if early.cancel_called:  # stopped before anything was sent
            summary = self._summary(began, path, tally, ClientStats())
            summary.surveyed = False
            return summary
        if api.sandbox and self.survey.real_replaced:
            raise UsageError(
                f"{shown_path(self.run_dir)} holds {self.survey.real_replaced:,} results of a "
                "real API that this sandbox run would replace; give the sandbox run another "
                "--out (`run --sandbox` writes to its own folder by default)"
            )
        header = self._header(api)
        if not self.survey.total_work and (api is recorded or says_already(path, header)):
            # Nothing to do, and the journal already says what this run would write first
            # (one whose word was taken for the API was read for it already): it stays as it
            # is (a no-op rerun of a large folder reads, writes and sends nothing, and makes
            # no client).
            self.progress.start(tally)
            self.progress.close()
            await anyio.to_thread.run_sync(hashed.save)
            return self._summary(began, path, tally, ClientStats())
        client = self._client()
        if self.options.preflight and self.survey.total_work:
            try:
                await self._preflight(client, lock)
            except BaseException:
                await client.aclose()
                raise
        counts = await anyio.to_thread.run_sync(schema_counts, self.spec, self.run_dir)
        writer = ManifestWriter.open(path, header, index)
        index = writer.index  # compaction moved the lines: read records back through this one
        journal, receive = open_journal()
        collector = Collector(
            writer,
            tally,
            on_change=self.progress.update,
            missing_is_failure=self.options.download,
        )
        settings = Settings(
            run_dir=self.run_dir,
            wait=self.options.wait if self.options.wait is not None else self.spec.wait,
            download=self.options.download,
            max_file_bytes=self.options.max_file_bytes,
            recreate_delay=self.options.recreate_delay,
            api=api,
            hashed=hashed,
            prices={job.id: job.price for job in self.spec.jobs if job.price is not None},
            timeouts=self.timeouts,
        )
        lifecycle = Lifecycle(
            client,
            journal,
            JobNamers.of_spec(self.spec),
            settings,
            Reconciler(client, index.owned_ids),
            lock=lock,
            notify=self.progress.message,
            budget=self.budget,
        )
        self.lifecycle = lifecycle
        lifecycle.creates.confirmed = self.confirmed
        self.producers = producers = Producers(
            self.spec, self.options, self.run_dir, self.survey, self.concurrency, self.stopper,
            self.budget, self.timeouts, counts, self.progress,
        )  # fmt: skip
        fatal: BaseException | None = None
        self.progress.start(tally)
        try:
            async with client, anyio.create_task_group() as group:
                group.start_soon(collector.run, receive)
                syncing = anyio.CancelScope()
                group.start_soon(collector.sync_periodically, syncing)
                try:
                    with self.stopper.on_first_request(lambda: self._stopping(client)):
                        await producers.work(lifecycle, index)
                    if lifecycle.creates.halted is not None:
                        # The token was refused; every key is recorded.
                        raise lifecycle.creates.halted
                except Exception as error:
                    fatal = error
                finally:
                    syncing.cancel()
                    journal.close()  # the collector writes what is queued, then ends
        except BaseExceptionGroup as errors:  # the collector failed: the disk, most likely
            # Its error is the cause; the prediction tasks' errors (a closed journal) follow it.
            fatal = errors if fatal is None else BaseExceptionGroup("run failed", [errors, fatal])
        finally:
            self.progress.close()
            try:
                await collector.final_sync()
            except StorageError:
                if fatal is None:
                    raise  # else the first error is the one worth reporting
            finally:
                # What this run hashed and downloaded: the next need not read it again.
                await anyio.to_thread.run_sync(hashed.save)
        if fatal is not None:
            raise _first_batchrun_error(fatal)
        return self._summary(began, path, tally, client.stats)

    @functools.cached_property
    def base_url(self) -> str:
        """The run's base URL as the API is known by (a UsageError if it is no http(s) URL)."""
        return normalize_base_url(self.options.base_url)

    def _known_api(self) -> Api | None:
        """The API this run talks to when that is known without asking: `--sandbox`, or
        api.replicate.com, which never is the sandbox (see `RunOptions.sandbox`)."""
        url = self.base_url
        if self.options.sandbox is not None:
            return Api(url=url, sandbox=self.options.sandbox)
        if url == DEFAULT_BASE_URL:
            return Api(url=url, sandbox=False)
        return None

    def _recorded_api(self, path: Path) -> Api | None:
        """A real API at this run's URL, when the journal already starts with the header this
        run would write for it (a run that asked the API wrote it): taken until the run finds
        something to send, so that a no-op rerun sends nothing. A journal that says the
        sandbox is not taken at its word: a real API at that URL now would redo its keys."""
        api = Api(url=self.base_url, sandbox=False)
        return api if says_already(path, self._header(api)) else None

    async def _asked_api(self) -> Api:
        """The API this run talks to, asked whether it is the sandbox (`Client.is_sandbox`)."""
        from batchrun.api.client import Client

        url = self.base_url
        # A client of its own, as the pre-flight's: the run's counts stay the predictions'.
        async with Client(
            url,
            self.options.token,
            request_limiter=polite(self.requests.per_second),
            transport=self.options.transport,
            token_env=self.spec.token_env,
        ) as asking:
            return Api(url=url, sandbox=await asking.is_sandbox())

    async def _survey(
        self, index: ManifestIndex, lock: Lock | None, hashed: HashedFiles, api: Api
    ) -> Survey:
        states = index.states
        assert isinstance(states, TableStates)  # the index `load_index` draws from the table
        # A result of the other kind (the sandbox's, for a run on a real API) is new here.
        return await anyio.to_thread.run_sync(
            survey, self.spec, states, self.run_dir, self.options, lock, api.sandbox, hashed,
            abandon_on_cancel=True,
        )  # fmt: skip

    def _header(self, api: Api) -> dict[str, Any]:
        """The first line this run writes in its journal."""
        return new_header(
            spec_path=self.spec.path,
            spec_sha256=self.spec.sha256,
            name=self.spec.name,
            shard=self.options.shard,
            api=api,
        )

    async def _preflight(self, client: Client, lock: Lock | None) -> None:
        """The online pre-flight (see batchrun.engine.preflight), unless this run folder
        already holds one made for the same spec, lock, base URL and jobs."""
        jobs = sorted(job.id for job in self.spec.jobs if self.survey.work[job.id])
        selection = selection_of(self.options)
        mark = fingerprint(self.spec, self.options.base_url, lock, selection)
        whole = fingerprint(self.spec, self.options.base_url, lock)
        known = recorded(self.run_dir, {mark, whole}, jobs)
        if known is not None:
            self.confirmed = known
            return
        from batchrun.api.client import Client

        # A client of its own: the run's request counts stay the predictions' own, and a few
        # quick retries do (the pre-flight only asks what the creates would learn anyway).
        async with Client(
            self.options.base_url,
            self.options.token,
            request_limiter=client.request_limiter,
            transport=self.options.transport,
            token_env=self.options.token_env,
            retry=PREFLIGHT_RETRIES,
        ) as asking:
            result = await preflight(
                self.spec, asking, lock=lock, jobs=jobs, selection=selection,
                sampled=self.survey.sample,
            )  # fmt: skip
        for note in result.notes:
            self.progress.message(note)
        if result.issues:
            raise SpecError(result.issues)
        self.confirmed = result.confirmed
        await anyio.to_thread.run_sync(record, self.run_dir, mark, jobs, result)

    def _note_a_long_load(self) -> None:
        # Resuming a run of a million keys reads half a gigabyte before the bar appears.
        size = 0
        for path in manifest_paths(self.run_dir):
            with contextlib.suppress(OSError):  # only a note: what cannot be read, load_index meets
                size += path.stat().st_size
        if size >= LOAD_NOTE_BYTES:
            shown = f"{human_bytes(size)} of manifest in {shown_path(self.run_dir)}"
            self.progress.message(f"batchrun: reading {shown}...")

    def _summary(self, began: float, path: Path, tally: Tally, stats: ClientStats) -> RunSummary:
        started = self.producers.started if self.producers else 0
        return RunSummary(
            run_dir=self.run_dir,
            manifest=path,
            survey=self.survey,
            tally=tally,
            wall_time=time.monotonic() - began,
            interrupted=self.stopper.stopping,
            client=stats,
            download=self.options.download,
            left=self.survey.total_work - started + tally.retracted,
            rate=self.rate,
            account_rate=self.account_rate,
            rate_shared_by=self.rate_shared_by,
            shard=self.options.shard,
            stopped_jobs=self.lifecycle.creates.stopped_jobs() if self.lifecycle else {},
            api=self.api,
            budget=self.budget,
        )

    def _client(self) -> Client:
        from batchrun.api.client import Client

        return Client(
            self.options.base_url,
            self.options.token,
            wait=self.spec.wait,
            max_connections=self.concurrency + 16,
            create_limiter=polite(self.rate.per_second),
            request_limiter=polite(self.requests.per_second),
            transport=self.options.transport,
            file_transport=self.options.transport,
            token_env=self.options.token_env,
            on_retry=self._retrying,
        )

    def _stopping(self, client: Client) -> None:
        self.progress.message(
            "stopping: no new predictions; waiting for those in flight "
            "(press Ctrl-C again to leave now; the next run picks them up)"
        )
        # Those still waiting for their turn were never sent: they are the next run's.
        client.create_limiter.withdraw_all()

    def _retrying(self, error: BatchrunError, rate_limited: bool) -> None:
        # Say so when the API is failing or pushing back, but not once per request.
        now = time.monotonic()
        if now - self._last_retry_note < RETRY_NOTE_EVERY:
            return
        self._last_retry_note = now
        if rate_limited:
            self.progress.message("batchrun: the API says slow down (429); creating more slowly")
        else:
            self.progress.message(f"batchrun: {error}; retrying")

    async def _watch_signals(
        self,
        scope: anyio.CancelScope,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        with scope, signals.receiving() as (earlier, received):
            task_status.started()
            for sig in earlier:
                self._on_signal(sig)
            async for sig in received:
                self._on_signal(sig)

    def _on_signal(self, received: signal.Signals) -> None:
        if received == signal.SIGTERM:
            # A process manager wants us gone soon: leave at once, resumably.
            self.stopper.leave()
        else:
            self.stopper.request()


def _first_batchrun_error(error: BaseException) -> BaseException:
    """The error to report from what a task group raised: its first BatchrunError, if any."""
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _first_batchrun_error(inner)
            if isinstance(found, BatchrunError):
                return found
    return error


__all__ = [
    "Action",
    "Progress",
    "RunOptions",
    "RunSummary",
    "Stopper",
    "resolve_token",
    "run",
    "run_async",
]
