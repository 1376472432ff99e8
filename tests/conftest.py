"""Shared fixtures. Async tests use anyio's pytest plugin: mark them `@pytest.mark.anyio`.

Sandbox fixtures (real loopback sockets, stopped after the test):

- `sandbox`: a started `Sandbox` with `latency=0.05`; `sandbox.base_url` is the API base
  (no /v1), `sandbox.state` the in-memory store, `sandbox.configure(...)` changes faults.
- `make_sandbox(**config)`: a factory for custom settings (`SandboxConfig` fields; latency
  defaults to 0.05 here too). Server options go as keywords as well: `second_origin=True`
  serves output files from another port, `files_tls=(cert, key)` serves them over https.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from batchrun.sandbox import Sandbox, SandboxConfig

TEST_LATENCY = 0.05


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
        **settings: Any,
    ) -> Sandbox:
        config = SandboxConfig().updated(**{"latency": TEST_LATENCY, **settings})
        sandbox = Sandbox(config, second_origin=second_origin, files_tls=files_tls)
        started.append(sandbox)
        return sandbox.start()

    yield make
    for sandbox in started:
        sandbox.stop()


@pytest.fixture
def sandbox(make_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return make_sandbox()
