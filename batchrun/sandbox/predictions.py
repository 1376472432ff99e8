"""A simulated prediction: its status is a function of the clock, computed when asked.

A prediction is `starting` for the first quarter of its latency, `processing` until
`finish_at`, then terminal with the outcome drawn at creation. `Cancel-After` (a deadline) and
an explicit cancel end it early as `canceled`. Nothing runs in the background, so thousands in
flight cost only their records.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batchrun.sandbox import outputs

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
STARTING_SHARE = 0.25
_STEPS = 4


def new_id() -> str:
    """A Replicate-style id: 26 lowercase base32 characters."""
    return base64.b32encode(os.urandom(17)).decode().lower()[:26]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def microseconds(timestamp: float) -> int:
    """A Unix time in whole microseconds: the precision of the timestamps the API shows."""
    return round(timestamp * 1_000_000)


def iso(timestamp: float) -> str:
    """An RFC 3339 UTC timestamp with microseconds, as Replicate writes them."""
    moment = EPOCH + timedelta(microseconds=microseconds(timestamp))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True, eq=False)
class Prediction:
    """One prediction's record; everything else is derived from it and the time."""

    id: str
    model: str
    version: str
    """The version as shown: a 64-hex id, `hidden` or `dp-...` for official models."""
    version_id: str
    """The version that runs (drives the outputs)."""
    kind: str
    input: dict[str, Any]
    digest: bytes
    created_at: float
    started_at: float
    finish_at: float
    outcome: str
    error: str | None
    deployment: str | None = None
    deadline: float | None = None
    default_outputs: int = 1
    """The images it makes when its input sets no `num_outputs` (its model's schema default)."""
    canceled_at: float | None = None
    changed: Any = None
    """An anyio.Event that `Prefer: wait` waiters sleep on; set when the prediction is canceled."""

    @property
    def ended_at(self) -> float:
        """When it reaches (or reached) its terminal status."""
        end = self.finish_at
        if self.deadline is not None:
            end = min(end, self.deadline)
        if self.canceled_at is not None:
            end = min(end, self.canceled_at)
        return end

    def status_at(self, now: float) -> str:
        """Its status at `now`."""
        end = self.ended_at
        if now >= end:
            return self.outcome if end == self.finish_at else "canceled"
        return "processing" if now >= self.started_at else "starting"

    def is_terminal(self, now: float) -> bool:
        """Whether it has ended by `now`."""
        return now >= self.ended_at

    def file_names(self) -> list[str]:
        """Names of the output files it serves once succeeded."""
        mode = outputs.output_mode(self.kind, self.input)
        return outputs.file_names(mode, self.input, self.default_outputs)


@dataclass(frozen=True)
class Origins:
    """Where a response's links point: the API's own origin and the file host's."""

    api: str
    files: str


def render(
    p: Prediction,
    now: float,
    origins: Origins,
    *,
    file_ttl: float,
    remove_data: bool,
    create: bool = False,
) -> dict[str, Any]:
    """The prediction as Replicate's API returns it at `now`.

    A create response that is not final says `starting`, as Replicate's does when `Prefer: wait`
    runs out (the official client relies on it to know it must poll).
    """
    status = p.status_at(now)
    terminal = status in TERMINAL
    if create and not terminal:
        status = "starting"
    body: dict[str, Any] = {
        "id": p.id,
        "model": p.model,
        "version": p.version,
        "input": p.input,
        "logs": _logs(p, now, status),
        "output": None,
        "data_removed": False,
        "error": None,
        "status": status,
        "source": "api",
        "created_at": iso(p.created_at),
        "urls": {
            "get": f"{origins.api}/v1/predictions/{p.id}",
            "cancel": f"{origins.api}/v1/predictions/{p.id}/cancel",
            "web": f"{origins.api}/p/{p.id}",
        },
    }
    if p.deployment is not None:
        body["deployment"] = p.deployment
    end = p.ended_at
    started = p.started_at <= end and now >= p.started_at
    if started and status != "starting":
        body["started_at"] = iso(p.started_at)
    if not terminal:
        return body
    body["completed_at"] = iso(end)
    body["metrics"] = {
        "predict_time": round(end - p.started_at, 6) if started else 0.0,
        "total_time": round(end - p.created_at, 6),
    }
    if status == "succeeded":
        mode = outputs.output_mode(p.kind, p.input)
        body["output"] = outputs.build_output(
            mode, p.digest, p.input, f"{origins.files}/delivery/{p.id}", p.default_outputs
        )
        if mode in ("images", "dict"):
            body["metrics"]["image_count"] = len(p.file_names())
        body["metrics"].update(outputs.token_counts(mode, p.digest, p.input))
    elif status in ("failed", "aborted"):
        body["error"] = p.error
    if remove_data and now >= end + file_ttl:
        body.update(input={}, output=None, logs="", data_removed=True)
    return body


def _logs(p: Prediction, now: float, status: str) -> str:
    if status == "starting":
        return ""
    seed = p.input.get("seed")
    lines = [f"Using seed: {seed if isinstance(seed, int) else int(p.digest[0])}"]
    span = max(p.finish_at - p.started_at, 1e-9)
    done = min(_STEPS, int(_STEPS * max(0.0, min(now, p.ended_at) - p.started_at) / span))
    lines += [f"{100 * step // _STEPS:3d}%| {step}/{_STEPS} steps" for step in range(done + 1)]
    if status == "succeeded":
        lines.append(f"Prediction {p.id} succeeded")
    elif status in ("failed", "aborted") and p.error:
        lines.append(f"Error: {p.error}")
    elif status == "canceled":
        lines.append("Prediction canceled")
    return "\n".join(lines) + "\n"
