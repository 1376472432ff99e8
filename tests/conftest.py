"""Shared fixtures. Async tests use anyio's pytest plugin: mark them `@pytest.mark.anyio`.

The tests mirror the package: one folder per layer (`spec/`, `planner/`, `api/`, `manifest/`,
`engine/`, `readout/`, `report/`, `commands/` with the frontend, `sandbox/`), `root/` for the
modules at the package's root, then `e2e/` (the command line against the sandbox, crashes and
signals included), `security/` (hostile specs, APIs and file hosts), `faults/` (the fault suite)
and `project/` (the docs, the layers' contracts, the pre-commit hook and the CI recipe). Helpers
several folders share sit here: `runs.py` (specs and runs), `scripted.py` (an API scripted over
MockTransport), `leaks.py` (the token a leak would show), `runfolder.py` (run folders written
by hand), `virtual.py` (virtual time), `hostile.py` and `openapi.py`.

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

Command line and files:

- `run_cli(*argv)`: `batchrun ARGV` in this process; its exit code, stdout and stderr.
- `git(repo, *args)`: git in `repo` with a fixed author; its stdout.
- `folder`: `tmp_path`, made the working directory.
- Spec files: `write_spec` in `tests/runs.py`.

The suite runs on pytest-xdist workers (`-n auto` in pyproject's addopts: two per core, see
`pytest_xdist_auto_num_workers`); tests marked `slow`
are handed out first, so the longest ones do not start last and hold up the end, the tests in
`SERIAL` (those that time a run) run one after another on one worker, and those in `TOGETHER`
share one.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from leaks import errors_never_show_token  # noqa: F401  (a fixture: the client and security tests use it)
from openapi import openapi_checked
from runs import TEST_LATENCY, Git, RunCli
from runs import TOKEN as RUNS_TOKEN

from batchrun.cli import main
from batchrun.sandbox import Sandbox, SandboxConfig

TOKEN = "r8_sandbox_test_token"


# Node ids (by prefix) that run one after another on one xdist worker, never beside each other:
# the tests that time what a run does (the fault suite's signals sent at random moments and its
# 429 storm, output links that expire while a watcher counts downloads, shards that must keep
# under one limit together). The fault suite's other scenarios count outcomes, not time (a full
# disk, seeded dice on the wire, outputs removed), and run beside anything. This chain is the
# suite's floor: keep it well under half of the whole.
SERIAL = (
    "tests/faults/test_fault_signals.py::",
    "tests/faults/test_fault_network.py::test_a_429_storm_on_creates_and_reads_slows_the_run_and_",
    "tests/faults/test_fault_files.py::test_slow_file_downloads_complete_whole",
    "tests/faults/test_fault_files.py::test_links_that_expire_mid_run_",
    "tests/engine/test_shard_rate.py::test_shards_running_at_once_on_one_account_stay_under_its_limit",
)
# Tests that must share a process, as one unit of work (beside the rest, and beside `SERIAL`):
# the second reads what the first found.
TOGETHER = (
    "tests/spec/test_spec_properties.py::test_plausible_specs_plan_or_fail_with_placed_errors",
    "tests/spec/test_spec_properties.py::test_the_plausible_specs_reach_every_outcome",
)


# Workers per core under `-n auto`. The suite waits more than it computes (sandboxes with
# latency, child processes, a browser): one worker per core kept the CPU 60% busy (153 s on two
# cores, 187 CPU s); two per core keep it busy (119 s). More only adds contention.
WORKERS_PER_CORE = 2


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return WORKERS_PER_CORE * (cores or 1)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, with the `SERIAL` tests as one unit of work and the `TOGETHER`
    tests as another. (`xdist_group` marks with `--dist loadgroup` would say it, but xdist 3.8
    cannot rename pytest 9's node ids, so every test ends up in a group of its own.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SerialScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SERIAL):
                return "serial"
            return "together" if nodeid.startswith(TOGETHER) else nodeid

    return SerialScheduling(config, log)


@pytest.hookimpl(trylast=True)  # after tests/faults/conftest.py marked its scenarios slow
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Slow tests first (a stable sort keeps the rest in order): on xdist workers the longest
    # ones then overlap everything else instead of running alone at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def run_cli() -> RunCli:
    """`batchrun ARGV` in this process: (exit code, stdout, stderr). Session-scoped, so
    hypothesis tests may use it too; it keeps no state between calls."""
    return _run_cli


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture(scope="session")
def git() -> Git:
    """`git -C REPO ARGS` with a fixed author and committer; its stdout."""
    return _git


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`tmp_path`, made the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def token_in_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The tests' API token (`runs.TOKEN`) in $REPLICATE_API_TOKEN for this test, as a person
    running `batchrun` has it; the token."""
    monkeypatch.setenv("REPLICATE_API_TOKEN", RUNS_TOKEN)
    return RUNS_TOKEN


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
