"""What `run` shows a person: a progress bar on stderr while it works, a summary at the end."""

from __future__ import annotations

import sys
from typing import IO, Any

from tqdm import tqdm

from batchrun.engine.collector import Tally
from batchrun.engine.runner import RunSummary
from batchrun.humanize import human_bytes, human_seconds, shown_path

FAILURES_SHOWN = 5


class BarProgress:
    """A tqdm bar: done / failed / in flight / total, rate and ETA; messages above it."""

    def __init__(self, *, bar: bool, quiet: bool, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stderr
        self._bar_enabled = bar and not quiet
        self._quiet = quiet
        self._bar: Any = None

    def start(self, tally: Tally) -> None:
        if self._bar_enabled and tally.total:
            self._bar = tqdm(
                total=tally.total,
                unit="pred",
                file=self._stream,
                dynamic_ncols=True,
                smoothing=0.05,
                mininterval=0.2,
            )

    def update(self, tally: Tally) -> None:
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
    counts = ", ".join(f"{status} {count}" for status, count in sorted(tally.finished.items()))
    ran = counts or "nothing to do"
    already = f"; {summary.survey.done} already done" if summary.survey.done else ""
    lines.append(f"  predictions: {ran}{already}")
    if summary.survey.failed_before:
        lines.append(
            f"  {summary.survey.failed_before} failed in an earlier run and were not retried "
            "(use --retry-failed)"
        )
    if summary.left:
        lines.append(f"  {summary.left} not started (stopped); run again to continue")
    if tally.in_flight:
        lines.append(f"  {tally.in_flight} still in flight; the next run picks them up by id")
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
    if tally.possible_duplicates:
        lines.append(
            f"  {tally.possible_duplicates} may have run twice: a create's answer was lost "
            "and the API cannot list predictions to check"
        )
    if tally.failure_count:
        lines.append("  failures:")
        for failure in tally.failures[:FAILURES_SHOWN]:
            lines.append(f"    {failure.key}  {failure.job}  {failure.status}: {failure.error}")
        more = tally.failure_count - min(len(tally.failures), FAILURES_SHOWN)
        if more > 0:
            lines.append(f"    … and {more} more (batchrun status {shown_path(summary.run_dir)})")
    lines.append(f"  manifest: {shown_path(summary.manifest)}")
    return lines
