"""What `run` shows a person: progress on stderr while it works, a summary at the end.

Progress is a bar on a terminal; anywhere else (a CI log, `nohup`, a file) a plain line at a
steady interval, so a long run never looks dead; or nothing. `-q` keeps only errors, `-v` adds
each failure as it happens to the notes every run shows (retries, 429 pauses).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, NamedTuple

from batchrun.cost import ESTIMATED, money
from batchrun.engine.collector import Tally
from batchrun.engine.runner import Progress, RunSummary
from batchrun.frontend.destination import redacted
from batchrun.frontend.options.run import ProgressStyle
from batchrun.humanize import human_bytes, human_seconds, printable, shown_path

FAILURES_SHOWN = 5
# Seconds between two progress lines off a terminal: often enough that a CI log shows the run is
# alive (a 40-prediction run said nothing for 20 s before), rare enough that an hour-long run
# writes a few hundred lines, not thousands.
LINE_EVERY = 10.0


def make_progress(
    style: ProgressStyle,
    *,
    quiet: bool = False,
    verbose: bool = False,
    stream: IO[str] | None = None,
) -> Progress:
    """The display `--progress STYLE -q -v` asks for; `auto` is a bar on a terminal, else lines."""
    stream = redacted(stream or sys.stderr)  # a failure's text may quote a server
    if style == "auto":
        style = "bar" if stream.isatty() else "lines"
    if quiet:
        style = "none"
    if style == "lines":
        return LinesProgress(stream=stream, verbose=verbose)
    return BarProgress(bar=style == "bar", quiet=quiet, verbose=verbose, stream=stream)


class _FailureNotes:
    """Under -v, one line per failure as the tally learns of it."""

    def __init__(self) -> None:
        self._listed = 0
        self._counted = 0

    def new_lines(self, tally: Tally) -> list[str]:
        lines = [
            # Server text: shown without escape sequences, cut short (the manifest has it all).
            f"batchrun: {failure.key}  {failure.job}  {failure.status}: {printable(failure.error)}"
            for failure in tally.failures[self._listed :]
        ]
        self._listed = len(tally.failures)
        # The tally keeps the first few failures only; count the rest as they come.
        unlisted = tally.failure_count - self._listed - self._counted
        if unlisted > 0:
            self._counted += unlisted
            lines.append(
                f"batchrun: {unlisted} more failed ({tally.failure_count} in all; "
                "`batchrun status` lists every one)"
            )
        return lines


class Counts(NamedTuple):
    """A copy of the tally's counts, taken on the run's thread for the ticker thread to show."""

    done: int
    total: int
    succeeded: int
    failed: int
    in_flight: int

    @classmethod
    def of(cls, tally: Tally) -> Counts:
        return cls(tally.done, tally.total, tally.succeeded, tally.failed, tally.in_flight)


def progress_line(counts: Counts, elapsed: float) -> str:
    """One line of progress: counts, the rate since the start, and the time left at that rate."""
    done = counts.done
    line = (
        f"batchrun: {done:,}/{counts.total:,} done ({counts.succeeded:,} ok, "
        f"{counts.failed:,} failed), {counts.in_flight:,} in flight"
    )
    if done and elapsed > 0:
        rate = done / elapsed
        left = (counts.total - done) / rate
        line += f"; {rate:.1f}/s, about {human_seconds(left)} left"
    return line


class LinesProgress:
    """Progress off a terminal: a plain line at the start and every `every` seconds after."""

    def __init__(
        self,
        *,
        stream: IO[str],
        verbose: bool = False,
        every: float = LINE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._every = every
        self._clock = clock
        self._failures = _FailureNotes() if verbose else None
        # Never the live tally: the collector changes it while the ticker thread reads.
        self._counts: Counts | None = None
        self._began = 0.0
        self._lock = threading.Lock()  # the ticker thread and the run's thread both write
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self, tally: Tally) -> None:
        self._counts = Counts.of(tally)
        self._began = self._clock()
        if not tally.total:
            return
        self.tick()
        # A thread, not the run's event loop: a line is due even when nothing changes for long.
        self._ticker = threading.Thread(target=self._tick_until_closed, daemon=True)
        self._ticker.start()

    def tick(self) -> None:
        """Write the progress line now."""
        counts = self._counts
        if counts is not None:
            self._write(progress_line(counts, self._clock() - self._began))

    def update(self, tally: Tally) -> None:
        self._counts = Counts.of(tally)
        if self._failures is not None:
            for line in self._failures.new_lines(tally):
                self._write(line)

    def message(self, text: str) -> None:
        self._write(text)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None

    def _tick_until_closed(self) -> None:
        while not self._stop.wait(self._every):
            self.tick()

    def _write(self, text: str) -> None:
        with self._lock:
            print(text, file=self._stream, flush=True)


class BarProgress:
    """A tqdm bar: done / failed / in flight / total, rate and ETA; messages above it."""

    def __init__(
        self, *, bar: bool, quiet: bool, verbose: bool = False, stream: IO[str] | None = None
    ) -> None:
        self._stream = stream or sys.stderr
        self._bar_enabled = bar and not quiet
        self._quiet = quiet
        self._failures = _FailureNotes() if verbose and not quiet else None
        self._bar: Any = None

    def start(self, tally: Tally) -> None:
        if self._bar_enabled and tally.total:
            # Imported here: a run with nothing to do draws no bar (tqdm was a tenth of its
            # imports), and neither does one whose progress goes to a log as lines.
            from tqdm import tqdm

            self._bar = tqdm(
                total=tally.total,
                unit="pred",
                file=self._stream,
                dynamic_ncols=True,
                smoothing=0.05,
                mininterval=0.2,
            )

    def update(self, tally: Tally) -> None:
        if self._failures is not None:
            for line in self._failures.new_lines(tally):
                self.message(line)
        bar = self._bar
        if bar is None:
            return
        # The counts first: update() redraws the line, and should draw them current.
        bar.set_postfix_str(
            f"ok {tally.succeeded}, failed {tally.failed}, in flight {tally.in_flight}",
            refresh=False,
        )
        if tally.done != bar.n:
            bar.update(tally.done - bar.n)

    def message(self, text: str) -> None:
        if self._quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self._stream)
        else:
            print(text, file=self._stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def summary_lines(summary: RunSummary) -> list[str]:
    """The end-of-run summary, one line per fact."""
    tally = summary.tally
    lines = [f"batchrun: {shown_path(summary.run_dir)}"]
    if summary.api is not None:
        lines.append(f"  api: {summary.api.describe()}")
    counts = ", ".join(f"{status} {count}" for status, count in sorted(tally.finished.items()))
    ran = counts or _none_finished(summary)
    already = f"; {summary.survey.done} already done" if summary.survey.done else ""
    lines.append(f"  predictions: {ran}{already}")
    if summary.survey.failed_before:
        lines.append(
            f"  {summary.survey.failed_before} failed in an earlier run and were not retried "
            "(use --retry-failed)"
        )
    if summary.survey.moving:
        lines.append(
            f"  {len(summary.survey.moving)} to move: their files renamed to the paths `files` "
            "now gives (no create, no download; any that could not move are named above)"
        )
    if summary.survey.stale_kept:
        lines.append(
            f"  {summary.survey.stale_kept} succeeded with a version other than the lock's and "
            "were not run again (use --rerun-stale)"
        )
    for job, reason in summary.stopped_jobs.items():
        lines.append(f"  stopped job '{job}': {reason}")
    budget = summary.budget
    if budget.reached and budget.refused_at is not None:
        _, reserved, _ = budget.refused_at
        lines.append(
            f"  budget reached: {money(budget.spent)} of {money(budget.limit or 0)} spent"
            f" ({ESTIMATED}), {money(reserved)} was reserved by predictions in flight when it"
            f" stopped creating; {summary.left} not started: raise the budget (--budget USD, or"
            " `budget:` in the spec) and run again to go on"
        )
    elif summary.left:
        lines.append(f"  {summary.left} not started (stopped); run again to continue")
    if tally.in_flight:
        lines.append(f"  {tally.in_flight} still in flight; the next run picks them up by id")
    if budget.spent_now or budget.limit is not None:
        of = f" of the budget of {money(budget.limit)}" if budget.limit is not None else ""
        lines.append(
            f"  cost: {money(budget.spent_now)} in this run, {money(budget.spent)} in this"
            f" folder{of} ({ESTIMATED})"
        )
    files = f"  files: {tally.files} ({human_bytes(tally.bytes)})"
    if tally.missing_files:
        what = "not downloaded (--no-download)" if not summary.download else "missing"
        files += f", {tally.missing_files} {what}"
    lines.append(files)
    stats = summary.client
    lines.append(
        f"  time: {human_seconds(summary.wall_time)} wall, "
        f"{human_seconds(tally.predict_time)} predict time; "
        f"requests: {stats.creates} creates, {stats.gets} polls, {stats.rate_limited} rate-limited"
    )
    if summary.shard is not None:
        lines.append(f"  rate: {_shard_rate(summary, summary.shard)}")
    if tally.possible_duplicates:
        lines.append(
            f"  {tally.possible_duplicates} may have run twice: a create's answer was lost "
            "and the API cannot list predictions to check"
        )
    if tally.failure_count:
        lines.append("  failures:")
        for failure in tally.failures[:FAILURES_SHOWN]:
            error = printable(failure.error)  # server text: no escapes, not a megabyte
            lines.append(f"    {failure.key}  {failure.job}  {failure.status}: {error}")
        more = tally.failure_count - min(len(tally.failures), FAILURES_SHOWN)
        if more > 0:
            lines.append(f"    … and {more} more (batchrun status {shown_path(summary.run_dir)})")
    lines.append(f"  manifest: {shown_path(summary.manifest)}")
    return lines


def _none_finished(summary: RunSummary) -> str:
    # "Nothing to do" only when there was nothing to do: after a stop it names what was stopped.
    if summary.stopped_jobs and not summary.interrupted:
        return "none created: the API's answers stopped the work (below)"
    if not summary.interrupted:
        return "nothing to do"
    if not summary.surveyed:
        return "none: stopped before the plan was compared with the manifest; nothing was sent"
    return "none finished (stopped)"


def error_lines(summary: RunSummary) -> list[str]:
    """What `-q` still shows at the end: the errors that stopped work (jobs the API's answers
    stopped, and the keys they left not started), one `batchrun:` line each. A prediction that
    failed is the run's data, not such an error: the exit code and `status` tell of it."""
    lines = [
        f"batchrun: stopped job '{job}': {reason}" for job, reason in summary.stopped_jobs.items()
    ]
    if summary.left and summary.stopped_jobs:
        lines.append(f"batchrun: {summary.left} not started; run again once fixed")
    return lines


def _shard_rate(summary: RunSummary, shard: tuple[int, int]) -> str:
    index, count = shard
    mine = f"{summary.rate} of creates for shard {index}/{count}"
    if summary.rate_shared_by > 1:
        return (
            f"{mine}, its share of the account's {summary.account_rate} "
            "(--shard-rate whole gives each shard all of it)"
        )
    return f"{mine}, not shared (--shard-rate whole)"


def summary_json(summary: RunSummary) -> dict[str, Any]:
    """The end-of-run summary for `run --json`: the same facts as `summary_lines`, as data."""
    tally = summary.tally
    stats = summary.client
    return {
        "run_dir": str(summary.run_dir),
        "manifest": str(summary.manifest),
        "ok": summary.ok,
        "interrupted": summary.interrupted,
        "surveyed": summary.surveyed,
        "api": summary.api.to_json() if summary.api is not None else None,
        "finished": dict(sorted(tally.finished.items())),
        "already_done": summary.survey.done,
        "failed_before": summary.survey.failed_before,
        "stale_kept": summary.survey.stale_kept,
        "to_move": len(summary.survey.moving),
        "not_started": summary.left,
        "in_flight": tally.in_flight,
        "files": tally.files,
        "bytes": tally.bytes,
        "missing_files": tally.missing_files,
        "downloaded": summary.download,
        "wall_time": round(summary.wall_time, 3),
        "predict_time": round(tally.predict_time, 3),
        "requests": {
            "creates": stats.creates,
            "polls": stats.gets,
            "rate_limited": stats.rate_limited,
            "retries": stats.retries,
        },
        "rate": {
            "creates": str(summary.rate) if summary.rate else None,
            "account": str(summary.account_rate) if summary.account_rate else None,
            "shared_by": summary.rate_shared_by,
        },
        "cost": {
            "estimated_from": "your prices",
            "this_run": round(summary.budget.spent_now, 9),
            "folder": round(summary.budget.spent, 9),
            "budget": summary.budget.limit,
            "budget_reached": summary.budget.reached,
            "reserved_when_stopped": (
                round(summary.budget.refused_at[1], 9) if summary.budget.refused_at else None
            ),
        },
        "possible_duplicates": tally.possible_duplicates,
        "failure_count": tally.failure_count,
        "failures": [
            {"key": f.key, "job": f.job, "status": f.status, "error": f.error}
            for f in tally.failures
        ],
    }
