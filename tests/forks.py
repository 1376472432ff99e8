"""Work put on a second core in a test, whatever the machine, and the workers forked, counted."""

from __future__ import annotations

import os

import pytest

from batchrun import secondcore


def forks_recorded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fork `batchrun.secondcore` asks for allowed (each caller lowers its own threshold:
    how many rows or bytes a worker takes), and the pid of each worker forked, in order."""
    monkeypatch.setattr(secondcore, "available", lambda: True)
    forked: list[int] = []
    real = os.fork

    def fork() -> int:
        pid = real()
        if pid:
            forked.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    return forked
