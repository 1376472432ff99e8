"""The sandbox's memory: predictions, models, uploaded files, statistics and the settings.

One `SandboxState` serves one app. The server thread's handlers and the test thread (through
`Sandbox.state` / `Sandbox.configure`) both touch it, so every change happens under one lock;
the work under it is a few dictionary operations.
"""

from __future__ import annotations

import bisect
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchrun.sandbox import outputs
from batchrun.sandbox.config import SandboxConfig
from batchrun.sandbox.faults import Faults
from batchrun.sandbox.images import ImageCache
from batchrun.sandbox.models import (
    VERSION_ID,
    Model,
    ModelRegistry,
    Version,
    default_outputs,
    model_kind,
)
from batchrun.sandbox.predictions import STARTING_SHARE, Prediction, microseconds, new_id
from batchrun.sandbox.problems import invalid_version

UPLOAD_TTL = 24 * 3600.0
DEFAULT_FAILURE = "sandbox: simulated failure (failure_rate)"


@dataclass(frozen=True)
class Target:
    """What a create runs: a model at a version, shown as `shown_version`."""

    model: str
    version: Version
    shown_version: str
    deployment: str | None = None


@dataclass(frozen=True)
class UploadedFile:
    """A file sent to POST /v1/files."""

    id: str
    name: str
    content_type: str
    data: bytes
    sha256: str
    metadata: dict[str, Any]
    created_at: float

    @property
    def expires_at(self) -> float:
        """Uploads live a day, as on Replicate."""
        return self.created_at + UPLOAD_TTL


@dataclass
class Stats:
    """What the sandbox saw and answered; `snapshot` is what GET /_sandbox/stats returns."""

    requests: Counter[str] = field(default_factory=Counter)
    responses: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    held: int = 0
    max_held: int = 0


class SandboxState:
    """Everything the sandbox remembers; safe to read and configure from another thread."""

    def __init__(
        self, config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self.config = config or SandboxConfig()
        self.clock = clock
        # The rate limit counts on the sandbox's clock too, so a test can hold it still.
        self.faults = Faults(self.config, clock)
        self.images = ImageCache()
        self.closing = False
        self.waiting: set[Prediction] = set()
        self.models = ModelRegistry()
        self.predictions: dict[str, Prediction] = {}
        self.files: dict[str, UploadedFile] = {}
        self.stats = Stats()
        self._ordered: list[Prediction] = []
        self._created: list[int] = []

    # Settings -----------------------------------------------------------------------------

    def configure(self, **changes: Any) -> SandboxConfig:
        """Apply a partial settings change (UsageError if invalid) and return the new settings."""
        with self._lock:
            new = self.config.updated(**changes)
            if "seed" in changes or "rate_limit" in changes or "rate_limit_burst" in changes:
                fresh = Faults(new, self.clock)
                if "seed" not in changes:
                    fresh.reuse_dice(self.faults)
                self.faults = fresh
            self.config = new
            return new

    def reset(self) -> None:
        """Forget every prediction, model, file and statistic; settings stay."""
        with self._lock:
            self.models = ModelRegistry()
            self.predictions = {}
            self.files = {}
            # Requests held right now still finish after the reset; keep counting them.
            self.stats = Stats(held=self.stats.held, max_held=self.stats.held)
            self._ordered = []
            self._created = []
            self.faults = Faults(self.config, self.clock)

    def count(self, event: str, amount: int = 1) -> None:
        """Add to one of the named counters in the statistics."""
        with self._lock:
            self.stats.events[event] += amount

    def record(self, route: str, outcome: str) -> None:
        """Count one request by route and by what it got: a status code, or `dropped`."""
        with self._lock:
            self.stats.requests[route] += 1
            self.stats.responses[outcome] += 1
            if outcome == "429":
                self.stats.events["throttled"] += 1
            elif outcome.isdigit() and int(outcome) >= 500:
                self.stats.events["server_errors"] += 1

    def hold(self, delta: int) -> None:
        """Track how many create requests are being held by `Prefer: wait`."""
        with self._lock:
            self.stats.held += delta
            self.stats.max_held = max(self.stats.max_held, self.stats.held)

    def wake_all(self) -> None:
        """Release every held `Prefer: wait` request (shutdown); call from the event loop."""
        self.closing = True
        for prediction in list(self.waiting):
            if prediction.changed is not None:
                prediction.changed.set()

    def snapshot(self) -> dict[str, Any]:
        """The statistics as JSON (what GET /_sandbox/stats returns)."""
        now = self.clock()
        with self._lock:
            by_status = Counter(p.status_at(now) for p in self._ordered)
            return {
                "requests": dict(self.stats.requests),
                "responses": dict(self.stats.responses),
                **{name: self.stats.events[name] for name in EVENTS},
                "held": self.stats.held,
                "max_held": self.stats.max_held,
                "predictions": dict(by_status),
                "models": {m.full_name: len(m.versions) for m in self.models.all()},
            }

    # Models -------------------------------------------------------------------------------

    def bump_version(self, owner: str, name: str) -> str:
        """Give `owner/name` a new latest version; return its id."""
        with self._lock:
            return self.models.bump(owner, name, self.clock()).id

    def model(self, owner: str, name: str) -> Model:
        """The model `owner/name` (every name exists)."""
        with self._lock:
            return self.models.model(owner, name, self.clock())

    def models_seen(self) -> list[Model]:
        """Every model asked about so far."""
        with self._lock:
            return self.models.all()

    def version(self, owner: str, name: str, version_id: str) -> Version | None:
        """A version of `owner/name`, if the sandbox knows it as one."""
        with self._lock:
            found = self.models.version(version_id)
            return found if found and found.model == f"{owner}/{name}" else None

    def target_for_model(self, owner: str, name: str, *, deployment: bool = False) -> Target:
        """The latest version of `owner/name` (an official model hides it)."""
        with self._lock:
            model = self.models.model(owner, name, self.clock())
            latest = model.latest
        shown = latest.id if deployment else self._shown(owner, latest)
        return Target(model.full_name, latest, shown, model.full_name if deployment else None)

    def target_for_version(self, ref: str) -> Target:
        """Resolve a create's `version`: `hex`, `owner/name:hex` or `owner/name`."""
        config = self.config
        name, _, version_id = ref.rpartition(":") if ":" in ref else (ref, "", "")
        owner, slash, model_name = name.partition("/")
        if ":" not in ref and VERSION_ID.match(ref):
            return self._bare_version(ref)
        if not slash or not owner or not model_name or "/" in model_name:
            raise invalid_version()
        if not version_id:
            if config.strict_versions and owner not in config.official_owners:
                raise invalid_version()
            return self.target_for_model(owner, model_name)
        if not VERSION_ID.match(version_id):
            raise invalid_version()
        with self._lock:
            now = self.clock()
            known = self.models.version(version_id)
            if known is None or known.model != name:
                if config.strict_versions:
                    raise invalid_version()
                known = self.models.adopt(owner, model_name, version_id, now)
        return Target(name, known, version_id)

    def _bare_version(self, version_id: str) -> Target:
        with self._lock:
            known = self.models.version(version_id)
            if known is None:
                if self.config.strict_versions:
                    raise invalid_version()
                # No name to attach it to: a placeholder model, so the spec still runs.
                known = self.models.adopt(
                    "sandbox", f"version-{version_id[:12]}", version_id, self.clock()
                )
        return Target(known.model, known, version_id)

    def _shown(self, owner: str, version: Version) -> str:
        config = self.config
        if owner not in config.official_owners:
            return version.id
        if config.proxy_versions:
            return "dp-" + hashlib.md5(version.id.encode()).hexdigest()  # an id, not a secret
        return "hidden"

    # Predictions --------------------------------------------------------------------------

    def create(
        self, target: Target, inputs: dict[str, Any], *, cancel_after: float | None = None
    ) -> Prediction:
        """Record a new prediction; its whole future is decided here."""
        with self._lock:
            config = self.config
            # Creation times never go backwards, so the list can be bisected by time.
            stamp = max(microseconds(self.clock()), self._created[-1] if self._created else 0)
            now = stamp / 1_000_000
            latency = inputs.get("sandbox_latency")
            if not isinstance(latency, int | float) or isinstance(latency, bool):
                latency = self.faults.latency(config)
            outcome, error = self._outcome(config, inputs)
            kind = model_kind(target.model)
            prediction = Prediction(
                id=new_id(),
                model=target.model,
                version=target.shown_version,
                version_id=target.version.id,
                kind=kind,
                input=inputs,
                digest=outputs.input_digest(target.model, target.version.id, inputs),
                created_at=now,
                started_at=now + latency * STARTING_SHARE,
                finish_at=now + latency,
                outcome=outcome,
                error=error,
                deployment=target.deployment,
                deadline=None if cancel_after is None else now + cancel_after,
                default_outputs=default_outputs(target.model),
            )
            self.predictions[prediction.id] = prediction
            self._ordered.append(prediction)
            self._created.append(stamp)
            owner, name = target.model.split("/", 1)
            self.models.model(owner, name, now).run_count += 1
            self.stats.events["creates"] += 1
            return prediction

    def _outcome(self, config: SandboxConfig, inputs: Mapping[str, Any]) -> tuple[str, str | None]:
        forced = inputs.get("sandbox_status")
        given = inputs.get("sandbox_error")
        error = given if isinstance(given, str) else None
        if isinstance(forced, str):
            if forced == "failed":
                return forced, error or "sandbox: failed as asked (sandbox_status)"
            return forced, error if forced == "aborted" else None
        if self.faults.roll("failure", config.failure_rate):
            return "failed", error or DEFAULT_FAILURE
        return "succeeded", None

    def get(self, prediction_id: str) -> Prediction | None:
        """The prediction with this id, if any."""
        return self.predictions.get(prediction_id)

    def cancel(self, prediction_id: str) -> Prediction | None:
        """Cancel a prediction that has not ended; call from the server's event loop."""
        with self._lock:
            prediction = self.predictions.get(prediction_id)
            if prediction is None:
                return None
            now = self.clock()
            if not prediction.is_terminal(now):
                prediction.canceled_at = now
            event, prediction.changed = prediction.changed, None
        if event is not None:
            event.set()
        return prediction

    def page(
        self, created_after: int | None, created_before: int | None, before_seq: int | None
    ) -> tuple[list[Prediction], int | None]:
        """One page of predictions, newest first, and the cursor of the next page (or None).

        `created_after` (inclusive) and `created_before` are Unix times in microseconds.
        """
        size = self.config.page_size
        with self._lock:
            low = 0 if created_after is None else bisect.bisect_left(self._created, created_after)
            high = len(self._created)
            if created_before is not None:
                high = bisect.bisect_left(self._created, created_before)
            if before_seq is not None:
                high = min(high, before_seq)
            start = max(low, high - size)
            found = self._ordered[start:high][::-1] if high > low else []
        return found, (start if start > low else None)

    # Files --------------------------------------------------------------------------------

    def add_file(
        self, name: str, content_type: str, data: bytes, metadata: dict[str, Any]
    ) -> UploadedFile:
        """Store an upload."""
        item = UploadedFile(
            id=new_id(),
            name=name,
            content_type=content_type,
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            metadata=metadata,
            created_at=self.clock(),
        )
        with self._lock:
            self.files[item.id] = item
        return item

    def file(self, file_id: str) -> UploadedFile | None:
        """An upload that has not expired."""
        item = self.files.get(file_id)
        return item if item is not None and self.clock() < item.expires_at else None

    def delete_file(self, file_id: str) -> bool:
        """Forget an upload; False if there was none."""
        with self._lock:
            return self.files.pop(file_id, None) is not None


EVENTS = (
    "creates",
    "lost_creates",
    "throttled",
    "server_errors",
    "resets",
    "downloads",
    "download_bytes",
    "expired_downloads",
    "file_downloads",
    "delivery_requests",
    "delivery_authorized",
)
"""Counters in the statistics: creates made (lost ones included), 429s sent, injected 5xx,
connections dropped, output files served (and bytes), expired-file answers, uploads downloaded
through the API, requests for output files and how many of them carried an Authorization
header."""
