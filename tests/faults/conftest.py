"""The fault suite: runs against the sandbox over real sockets with faults switched on.

Every scenario ends with each planned key in the manifest exactly once with a terminal status
(succeeded, or the failure the fault caused), no prediction created twice, and nothing
half-written in place. At the end of every pytest run that collected them, one line says how
many scenarios ran and passed: `fault suite: N scenarios, M passed`.

The scenarios that time what a run does under faults (a 429 storm that must slow it, a signal
that must end it at once, links that expire while a watcher counts downloads) run one after
another on one pytest-xdist worker, never beside each other (`SERIAL` in tests/conftest.py); the
others count outcomes (a full disk, seeded dice on the wire) and run beside anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_collected: set[str] = set()
_passed: set[str] = set()


def _in_faults(item: pytest.Item) -> bool:
    return HERE in Path(item.path).resolve().parents


@pytest.hookimpl(tryfirst=True)  # before tests/conftest.py hands out the slow tests first
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _in_faults(item):
            item.add_marker(pytest.mark.slow)  # seconds each


_prefix: list[str] = []  # this folder as node ids begin with it


def pytest_configure(config: pytest.Config) -> None:
    _prefix[:] = [HERE.relative_to(config.rootpath).as_posix() + "/"]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Reports reach the controller of an xdist run too, where nothing was collected: a
    # scenario is counted when its setup is reported (after -k and -m deselected the rest).
    if not _prefix or not report.nodeid.startswith(_prefix[0]):
        return
    if report.when == "setup":
        _collected.add(report.nodeid)
    if report.when == "call" and report.passed:
        _passed.add(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _collected:
        terminalreporter.write_line(
            f"fault suite: {len(_collected)} scenarios, {len(_passed)} passed"
        )
