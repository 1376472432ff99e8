"""Stopper: the first request lets in-flight work finish, the second (or leave()) cancels it."""

from __future__ import annotations

import anyio.lowlevel
import pytest

from batchrun.engine.signals import Stopper


@pytest.mark.anyio
async def test_the_first_request_tells_its_listeners_and_the_second_cancels() -> None:
    stopper = Stopper()
    told: list[str] = []
    with stopper.phase(leave_on_first=False) as scope:
        with stopper.on_first_request(lambda: told.append("first")):
            stopper.request()
            assert (told, scope.cancel_called, stopper.stopping) == (["first"], False, True)
            stopper.request()
            assert (told, scope.cancel_called) == (["first"], True)
            await anyio.lowlevel.checkpoint()  # cancelled here
        pytest.fail("the second request did not cancel the phase")  # pragma: no cover
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_leave_cancels_at_once_without_the_first_request_notes() -> None:
    stopper = Stopper()
    told: list[str] = []
    with (
        stopper.phase(leave_on_first=False) as scope,
        stopper.on_first_request(lambda: told.append("first")),
    ):
        stopper.leave()
        await anyio.lowlevel.checkpoint()
    assert (told, scope.cancelled_caught, stopper.requests) == ([], True, 2)


def test_a_listener_that_comes_after_the_first_request_is_told_at_once() -> None:
    stopper = Stopper()
    stopper.request()
    told: list[str] = []
    with stopper.on_first_request(lambda: told.append("late")):
        pass
    assert told == ["late"]
    with stopper.on_first_request(lambda: told.append("again")):
        pass
    stopper.request()
    assert told == ["late", "again"]  # the second request tells no one


@pytest.mark.anyio
async def test_a_phase_begun_after_a_stop_is_cancelled_from_the_start() -> None:
    stopper = Stopper()
    stopper.request()
    with stopper.phase(leave_on_first=True) as early:
        assert early.cancel_called
    with stopper.phase(leave_on_first=False) as work:
        assert not work.cancel_called  # one request lets what is in flight finish
