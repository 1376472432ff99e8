from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from batchrun.engine.gates import INVALID_STOPS_AFTER, JobGate, JobStopped


@pytest.mark.anyio
async def test_an_unconfirmed_job_probes_one_create_at_a_time_until_one_is_accepted() -> None:
    gate = JobGate("j")
    inside = 0
    most = 0

    async def create(accept: bool) -> None:
        nonlocal inside, most
        async with gate.turn() as probe:
            assert probe
            inside += 1
            most = max(most, inside)
            await anyio.lowlevel.checkpoint()
            inside -= 1
            if accept:
                gate.accepted()

    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(create, False)
    assert most == 1
    await create(True)
    async with gate.turn() as probe:
        assert not probe  # open now: creates go out freely


@pytest.mark.anyio
async def test_a_confirmed_job_does_not_probe() -> None:
    async with JobGate("j", confirmed=True).turn() as probe:
        assert not probe


@pytest.mark.anyio
async def test_the_same_field_refused_from_the_start_stops_the_job() -> None:
    gate = JobGate("j")
    for _ in range(INVALID_STOPS_AFTER - 1):
        assert not gate.invalid(["input.aspect_ratio", "input.seed"], "422")
    assert gate.invalid(["input.aspect_ratio"], "422 again")
    with pytest.raises(JobStopped, match="stopped job 'j': 422 again"):
        async with gate.turn():
            pass


def test_different_fields_or_an_accepted_create_do_not_stop_the_job() -> None:
    gate = JobGate("j")
    assert not any(gate.invalid([f"input.f{i}"], "422") for i in range(5))
    accepted = JobGate("k")
    accepted.accepted()
    assert not any(accepted.invalid(["input.x"], "422") for _ in range(5))
