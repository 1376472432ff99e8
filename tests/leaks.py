"""The token a test leaks if anything does: distinctive, so a leak cannot hide.

`errors_never_show_token` (used by every client test module) records every batchrun error built
during a test and fails the test if the token is in the str(), repr() or any attribute of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from batchrun.errors import BatchrunError

TOKEN = "r8_Zq7LEAKCANARY0b5e4d3c2a19f8"


@pytest.fixture
def errors_never_show_token(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[BatchrunError]]:
    """Every BatchrunError built during the test; none may show the token."""
    made: list[BatchrunError] = []
    original = BatchrunError.__init__

    def recording(self: BatchrunError, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(BatchrunError, "__init__", recording)
    yield made
    for error in made:
        shown = [str(error), repr(error), *(repr(v) for v in vars(error).values())]
        leaks = [text for text in shown if TOKEN in text]
        assert not leaks, f"the token leaked into a {type(error).__name__}: {leaks}"
