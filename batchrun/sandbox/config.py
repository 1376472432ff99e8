"""The sandbox's settings: how predictions behave and which faults it injects.

`SandboxConfig` is a frozen record validated once when it is built; `updated(**changes)` returns
a new one (the admin endpoint and `Sandbox.configure` swap it in at runtime). Every meaning error
is a `UsageError` naming the setting, so `batchrun sandbox` and `POST /_sandbox/config` can show
it as it is.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchrun.errors import UsageError

# Owners whose models Replicate calls "official": their predictions show version "hidden".
DEFAULT_OFFICIAL_OWNERS = frozenset(
    {
        "black-forest-labs",
        "bytedance",
        "google",
        "ideogram-ai",
        "meta",
        "openai",
        "recraft-ai",
        "stability-ai",
    }
)

_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class RateLimit:
    """`count` requests per `period` seconds, with bursts of up to `burst`."""

    count: float
    period: float
    burst: int

    @property
    def per_second(self) -> float:
        """The sustained rate in requests per second."""
        return self.count / self.period


def parse_rate(text: str, burst: int | None = None) -> RateLimit:
    """Parse `600/min`, `10/s` or `100/h`; the burst defaults to one second's worth (at least 1)."""
    match = _RATE.match(text.lower())
    if not match or match.group(2) not in _PERIODS or float(match.group(1)) <= 0:
        raise UsageError(f"rate_limit must look like 600/min, 10/s or 100/h, got {text!r}")
    count, period = float(match.group(1)), _PERIODS[match.group(2)]
    if burst is None:
        burst = max(1, math.ceil(count / period))
    return RateLimit(count=count, period=period, burst=burst)


@dataclass(frozen=True)
class SandboxConfig:
    """What the sandbox simulates; every field can be changed at runtime."""

    latency: float = 1.0
    """Seconds from create to the end: a quarter of it `starting`, the rest `processing`."""
    jitter: float = 0.0
    """Each prediction's latency is `latency ± uniform(0, jitter)` seconds (never below 0)."""
    failure_rate: float = 0.0
    """Share of predictions that end `failed`."""
    error_rate: float = 0.0
    """Share of /v1 requests (methods in `error_methods`) answered `error_status` with HTML."""
    error_methods: frozenset[str] = frozenset({"GET"})
    error_status: int = 503
    reset_rate: float = 0.0
    """Share of /v1 requests (methods in `reset_methods`) whose connection is dropped unanswered."""
    reset_methods: frozenset[str] = frozenset({"GET", "POST"})
    lose_create_response_rate: float = 0.0
    """Share of creates that DO create the prediction, then drop the connection unanswered."""
    rate_limit: str | None = None
    """Creates allowed, e.g. `600/min`: a token bucket answering 429 with Retry-After."""
    rate_limit_burst: int | None = None
    """Bucket size; default one second's worth of `rate_limit`."""
    honor_wait: bool = True
    """False ignores `Prefer: wait` (as some proxies do), so clients must poll."""
    response_delay: float = 0.0
    """Seconds added before every /v1 answer."""
    file_ttl: float = 3600.0
    """Seconds output files (and, with `remove_data`, outputs and inputs) live after completion."""
    remove_data: bool = True
    """After `file_ttl`, predictions show `data_removed: true`, no input and a null output."""
    expired_status: int = 404
    download_bytes_per_second: float | None = None
    """Throttle output file downloads to this many bytes per second."""
    list_endpoint: bool = True
    """False answers GET /v1/predictions with 404, like a proxy without it."""
    announce: bool = True
    """Every answer carries the sandbox's marker header (app.SANDBOX_HEADER), so batchrun knows
    its results are the sandbox's; False plays a real API (a test's stand-in for Replicate)."""
    seed: int = 0
    """Seed of the fault RNG: the same seed and the same requests give the same faults."""
    tokens: frozenset[str] = frozenset()
    """Accepted API tokens; empty accepts any non-empty token."""
    urls_host: str | None = None
    """Origin of the `urls` in predictions (as https://api.replicate.com); default: the sandbox."""
    files_base_url: str | None = None
    """Origin output files are served from; default: the sandbox itself."""
    proxy_versions: bool = False
    """Official models show version `dp-<32 hex>` (like the proxy) instead of `hidden`."""
    official_owners: frozenset[str] = DEFAULT_OFFICIAL_OWNERS
    strict_versions: bool = False
    models_endpoint: bool = True
    """False answers GET /v1/models (and a model, its versions) with 404, like a proxy without."""
    models_list: bool = True
    """False answers GET /v1/models alone with 404: a proxy that looks models up, never lists."""
    only_models: frozenset[str] = frozenset()
    """When set, the only `owner/name` models that exist: any other is 404, like a typo."""
    """Refuse versions the sandbox did not derive (422), as Replicate refuses unknown versions."""
    cancel_after_min: float = 5.0
    """Shortest `Cancel-After` accepted, in seconds (Replicate's minimum is 5)."""
    max_image_side: int = 1024
    max_upload_bytes: int = 100 * 1024 * 1024
    page_size: int = 100
    rate: RateLimit | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise UsageError("invalid sandbox settings: " + "; ".join(problems))
        rate = parse_rate(self.rate_limit, self.rate_limit_burst) if self.rate_limit else None
        object.__setattr__(self, "rate", rate)

    def updated(self, **changes: Any) -> SandboxConfig:
        """A copy with `changes` applied; values may come from JSON (lists for sets)."""
        return dataclasses.replace(self, **coerce(changes))

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (sets as sorted lists)."""
        out: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if not item.init:
                continue
            value = getattr(self, item.name)
            out[item.name] = sorted(value) if isinstance(value, frozenset) else value
        return out


_SHARES = ("failure_rate", "error_rate", "reset_rate", "lose_create_response_rate")
_SECONDS = ("latency", "jitter", "response_delay", "file_ttl", "cancel_after_min")
_FLAGS = (
    "honor_wait",
    "announce",
    "remove_data",
    "list_endpoint",
    "proxy_versions",
    "strict_versions",
    "models_endpoint",
    "models_list",
)
_SETS = ("error_methods", "reset_methods", "tokens", "official_owners", "only_models")
_POSITIVE_INTS = ("max_image_side", "max_upload_bytes", "page_size")
_OPTIONAL_TEXT = ("rate_limit", "urls_host", "files_base_url")


def setting_names() -> list[str]:
    """Names of the settings a caller may change."""
    return [item.name for item in dataclasses.fields(SandboxConfig) if item.init]


def coerce(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check names and turn JSON-ish values (lists) into the record's types."""
    known = setting_names()
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in known:
            raise UsageError(f"unknown sandbox setting {name!r}; known: {', '.join(known)}")
        if name in _SETS and isinstance(value, list | tuple | set | frozenset):
            value = frozenset(_upper(name, value))
        out[name] = value
    return out


def _upper(name: str, values: Iterable[Any]) -> Iterable[Any]:
    if name.endswith("_methods"):
        return (v.upper() if isinstance(v, str) else v for v in values)
    return values


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _problems(config: SandboxConfig) -> Iterable[str]:
    for name in _SHARES:
        value = getattr(config, name)
        if not _is_number(value) or not 0 <= value <= 1:
            yield f"{name} must be a number from 0 to 1, got {value!r}"
    for name in _SECONDS:
        value = getattr(config, name)
        if not _is_number(value) or value < 0:
            yield f"{name} must be a number of seconds of at least 0, got {value!r}"
    for name in _FLAGS:
        if not isinstance(getattr(config, name), bool):
            yield f"{name} must be true or false, got {getattr(config, name)!r}"
    for name in _SETS:
        value = getattr(config, name)
        if not isinstance(value, frozenset) or not all(isinstance(v, str) for v in value):
            yield f"{name} must be a list of strings, got {value!r}"
    for name in _POSITIVE_INTS:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            yield f"{name} must be a whole number of at least 1, got {value!r}"
    for name in _OPTIONAL_TEXT:
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value):
            yield f"{name} must be a non-empty string or null, got {value!r}"
    yield from _special_problems(config)


def _special_problems(config: SandboxConfig) -> Iterable[str]:
    if isinstance(config.rate_limit, str) and config.rate_limit:
        try:
            parse_rate(config.rate_limit)
        except UsageError as error:
            yield str(error)
    burst = config.rate_limit_burst
    if burst is not None and (not isinstance(burst, int) or isinstance(burst, bool) or burst < 1):
        yield f"rate_limit_burst must be a whole number of at least 1, got {burst!r}"
    speed = config.download_bytes_per_second
    if speed is not None and (not _is_number(speed) or speed <= 0):
        yield f"download_bytes_per_second must be a positive number or null, got {speed!r}"
    for name in ("error_status", "expired_status"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
            yield f"{name} must be an HTTP error status (400-599), got {value!r}"
    if not isinstance(config.seed, int) or isinstance(config.seed, bool):
        yield f"seed must be a whole number, got {config.seed!r}"
