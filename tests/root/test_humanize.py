from __future__ import annotations

import pytest

from batchrun.humanize import counted, human_bytes, human_seconds


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),  # divided by 1024, so named KiB: a KB would be 1000
        (1536, "1.5 KiB"),
        (5 * 1024**2, "5.0 MiB"),
        (3 * 1024**3, "3.0 GiB"),
        (2 * 1024**4, "2.0 TiB"),
    ],
)
def test_sizes_are_shown_in_binary_units_named_as_such(count: int, shown: str) -> None:
    assert human_bytes(count) == shown


def test_durations_and_counts() -> None:
    assert human_seconds(75.2) == "1m 15s"
    assert human_seconds(3 * 3600 + 120) == "3h 02m"
    assert counted(1, "job") == "1 job"
    assert counted(1200, "job") == "1,200 jobs"
