"""Answers that will repeat stop the work they doom.

A job whose target the pre-flight could not confirm (the API has no models endpoint) sends its
creates one at a time until one is accepted, the first without `Prefer: wait` so its answer
comes at once. What the answers say decides for the rest:

- accepted: the gate opens, and the job's creates go out as fast as the limits allow;
- 404 for the target (no such model, version or deployment, or a base URL without the proxy's
  prefix): the job stops after that one create; its other keys are left for a later run;
- 422 naming the same field, `INVALID_STOPS_AFTER` times from the start: the job stops;
- 401/403: the token is wrong for every job: the run ends (the caller raises).

A refusal costs nothing on Replicate, but 200 identical 404 lines, or 200 identical 422 records,
help nobody. A create refused for one of these reasons made nothing, and nothing about its key is
wrong: the key is recorded as not created (`not_created`, docs/manifest.md), so the run after the
fix creates it as new, as it does the keys the stop left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import anyio

from batchrun.api.ratelimit import Withdrawn

# A row may be refused for a reason of its own (one prompt too long); three refusals of the same
# field in a row, before any create was accepted, are the spec's mistake, not the rows'.
INVALID_STOPS_AFTER = 3


class NotCreated(Withdrawn):
    """A create that made nothing, and leaves its key not started: refused outright by the API
    (for a reason that is not the key's own), or not sent because its job or the run stopped."""


class JobStopped(NotCreated):
    """A create not sent (or refused) because its job sends no more; `reason` says why."""

    def __init__(self, job: str, reason: str) -> None:
        self.job, self.reason = job, reason
        super().__init__(f"stopped job '{job}': {reason}")


class JobGate:
    """One job's creates: one at a time until one is accepted, none once the job is stopped."""

    def __init__(self, job: str, *, confirmed: bool = False) -> None:
        self.job = job
        # Open: creates go out freely (the target is known to exist, or a create was accepted).
        self.open = confirmed
        self.accepted_any = False
        self.stopped: str | None = None
        self._lock = anyio.Lock()
        self._invalid: list[frozenset[str]] = []

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        """Hold the job's turn for one create; yields whether it is a probe (the gate is shut).

        JobStopped if the job was stopped, before or while this create waited its turn.
        """
        self._check()
        if self.open:
            yield False
            return
        async with self._lock:
            self._check()
            yield not self.open

    def _check(self) -> None:
        if self.stopped is not None:
            raise JobStopped(self.job, self.stopped)

    def accepted(self) -> None:
        """A create of this job was accepted: the rest go out freely."""
        self.open = True
        self.accepted_any = True
        self._invalid.clear()

    def not_found(self, reason: str) -> None:
        """The API has no such target: no other create of this job can fare better."""
        self.stopped = reason

    def may_stop_for_invalid(self) -> bool:
        """Whether 422s could still stop the job: no create accepted yet, and the refusals so
        far (if any) share a field."""
        if self.accepted_any or self.stopped is not None:
            return False
        return not self._invalid or bool(frozenset.intersection(*self._invalid))

    def invalid(self, fields: Sequence[str], reason: str) -> bool:
        """A 422; True if it stops the job (the same field refused from the start)."""
        if self.accepted_any or self.stopped is not None:
            return False
        self._invalid.append(frozenset(fields))
        if len(self._invalid) < INVALID_STOPS_AFTER:
            return False
        common = frozenset.intersection(*self._invalid)
        if common:
            self.stopped = reason
            return True
        return False
