"""`batchrun sandbox`: where the emulator listens, and the settings it starts with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SandboxArgs:
    """`batchrun sandbox`; None leaves the emulator's own default."""

    host: str = "127.0.0.1"
    port: int = 8765
    latency: float | None = None
    jitter: float | None = None
    failure_rate: float | None = None
    error_rate: float | None = None
    reset_rate: float | None = None
    rate_limit: str | None = None
    no_wait: bool = False
    file_ttl: float | None = None
    seed: int | None = None
    set: tuple[str, ...] = ()
    second_origin: bool = False
    access_log: bool = False
