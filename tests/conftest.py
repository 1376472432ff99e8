"""Shared fixtures. Async tests use anyio's pytest plugin: mark them `@pytest.mark.anyio`.

Sandbox fixtures (real loopback sockets, stopped after the test):

- `sandbox`: a started `Sandbox` with `latency=0.05`; `sandbox.base_url` is the API base
  (no /v1), `sandbox.state` the in-memory store, `sandbox.configure(...)` changes faults.
- `make_sandbox(**config)`: a factory for custom settings (`SandboxConfig` fields; latency
  defaults to 0.05 here too). Server options go as keywords as well: `second_origin=True`
  serves output files from another port, `files_tls=(cert, key)` serves them over https,
  `clock=` replaces the sandbox's clock (predictions and the rate limit both follow it).
- `api`: an `httpx.Client` on `sandbox` with a token, which checks every request it sends and
  every answer it gets under /v1 against Replicate's OpenAPI schema (`openapi_checked`).
- `http`: a plain `httpx.Client` (no base URL, no token) that checks /v1 exchanges the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi import openapi_checked

from batchrun.sandbox import Sandbox, SandboxConfig

TEST_LATENCY = 0.05
TOKEN = "r8_sandbox_test_token"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
    started: list[Sandbox] = []

    def make(
        *,
        second_origin: bool = False,
        files_tls: tuple[str | Path, str | Path] | None = None,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> Sandbox:
        config = SandboxConfig().updated(**{"latency": TEST_LATENCY, **settings})
        sandbox = Sandbox(config, second_origin=second_origin, files_tls=files_tls, clock=clock)
        started.append(sandbox)
        return sandbox.start()

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url,
        headers={"Authorization": f"Bearer {TOKEN}"},
        event_hooks={"response": [openapi_checked]},
        verify=False,  # plain http on loopback; skips loading CA certificates for each test
    ) as client:
        yield client


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(event_hooks={"response": [openapi_checked]}, verify=False) as client:
        yield client


# The folders the README's quick start and a person's own runs leave in the checkout. Tests work
# on copies in tmp_path (tests in any order, on a fresh clone or after the quick start).
CHECKOUT = Path(__file__).resolve().parent.parent
CHECKOUT_RUNS = (CHECKOUT / "runs", CHECKOUT / "specs" / "runs")


def _runs_snapshot() -> dict[str, int]:
    return {
        str(path): path.stat().st_mtime_ns
        for folder in CHECKOUT_RUNS
        if folder.is_dir()
        for path in [folder, *folder.rglob("*")]
    }


@pytest.fixture(scope="session", autouse=True)
def _checkout_runs_untouched() -> Iterator[None]:
    """No test writes the checkout's runs/ or specs/runs/; the suite fails at its end if one did."""
    before = _runs_snapshot()
    yield
    after = _runs_snapshot()
    changed = sorted(set(before.items()) ^ set(after.items()))
    assert not changed, f"a test wrote the checkout's runs: {changed[:5]}"
