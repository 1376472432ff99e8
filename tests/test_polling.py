from __future__ import annotations

from datetime import UTC, datetime
from itertools import islice

import pytest

from batchrun.api.objects import parse_time
from batchrun.engine.polling import PollSchedule, run_seconds


def test_api_timestamps_parse_with_nanoseconds_and_zones() -> None:
    assert parse_time("2025-01-15T10:03:40.584470194Z") == datetime(
        2025, 1, 15, 10, 3, 40, 584470, tzinfo=UTC
    )
    assert parse_time("2025-01-15T09:54:55.566Z") == datetime(
        2025, 1, 15, 9, 54, 55, 566000, tzinfo=UTC
    )
    assert parse_time("2025-01-15T09:54:55+00:00") == datetime(2025, 1, 15, 9, 54, 55, tzinfo=UTC)
    assert parse_time("yesterday") is None
    assert parse_time(None) is None


def test_run_seconds_uses_the_servers_own_clock() -> None:
    assert run_seconds("2025-01-15T10:03:39.896Z", "2025-01-15T10:03:41.142386377Z") == (
        pytest.approx(1.246386, abs=1e-6)
    )
    assert run_seconds(None, "2025-01-15T10:03:41Z") is None
    assert run_seconds("2025-01-15T10:03:41Z", "2025-01-15T10:03:40Z") is None


def test_without_history_polling_starts_fast_and_backs_off_to_a_cap() -> None:
    schedule = PollSchedule(first=0.5, factor=2, cap=4)
    assert list(islice(schedule.delays("job", 0.0), 6)) == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_with_history_the_first_poll_lands_just_after_the_typical_run_time() -> None:
    schedule = PollSchedule(first=0.5, factor=2, cap=10, floor=0.2)
    schedule.observe("job", 2.0)
    delays = list(islice(schedule.delays("job", 0.0), 4))
    assert delays == [2.0, pytest.approx(0.2), pytest.approx(0.4), pytest.approx(0.8)]
    # A prediction already older than the typical run time is polled soon.
    assert next(schedule.delays("job", 30.0)) == 0.2
    # Other jobs learn on their own.
    assert next(schedule.delays("other", 0.0)) == 0.5


def test_the_typical_run_time_is_a_moving_average() -> None:
    schedule = PollSchedule(weight=0.5)
    schedule.observe("job", 2.0)
    schedule.observe("job", 4.0)
    assert schedule.typical("job") == 3.0
