"""The fault suite: runs against the sandbox over real sockets with faults switched on.

Every scenario ends with each planned key in the manifest exactly once with a terminal status
(succeeded, or the failure the fault caused), no prediction created twice, and nothing
half-written in place. At the end of every pytest run that collected them, one line says how
many scenarios ran and passed: `fault suite: N scenarios, M passed`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_collected: set[str] = set()
_passed: set[str] = set()


def pytest_collection_finish(session: pytest.Session) -> None:
    # After deselection (-k, -m): only the scenarios this run will actually try.
    for item in session.items:
        if HERE in Path(item.path).resolve().parents:
            _collected.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.nodeid in _collected and report.when == "call" and report.passed:
        _passed.add(report.nodeid)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _collected:
        terminalreporter.write_line(
            f"fault suite: {len(_collected)} scenarios, {len(_passed)} passed"
        )
