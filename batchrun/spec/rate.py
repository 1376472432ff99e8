"""A rate as a spec writes it (`600/min`): parsed once, split among shards, read by the limiters.

Its own module, so the HTTP layer takes its defaults and its type from here, not from the spec
loader.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from batchrun.spec.describe import show

# Replicate's documented limits: creates, and every other request.
DEFAULT_RATE = "600/min"
DEFAULT_REQUESTS = "3000/min"

_RATE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*/\s*(s|min|h)\s*")
_PERIODS = {"s": 1.0, "min": 60.0, "h": 3600.0}


class Rate(NamedTuple):
    """A number of requests per period, as the spec wrote it (e.g. 600/min)."""

    number: float  # not `count`: that is a tuple's method
    seconds: float
    text: str

    @property
    def per_second(self) -> float:
        """Requests per second."""
        return self.number / self.seconds

    @classmethod
    def parse(cls, text: str) -> Rate:
        """`N/s`, `N/min` or `N/h` (N may have decimals); ValueError showing the format."""
        match = _RATE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"expected N/s, N/min or N/h, like 600/min; got {show(text)}")
        count = float(match.group(1))
        if count <= 0:
            raise ValueError(f"a rate must be more than 0, like 600/min; got {show(text)}")
        return cls(count, _PERIODS[match.group(2)], text)

    def shared_by(self, ways: int) -> Rate:
        """This rate split `ways` ways, in the same unit (600/min by 4 is 150/min)."""
        if ways == 1:
            return self
        count = self.number / ways
        unit = next(name for name, seconds in _PERIODS.items() if seconds == self.seconds)
        return Rate(count, self.seconds, f"{count:.4g}/{unit}")

    def __str__(self) -> str:
        return self.text
