"""The simulation on a fake clock: statuses over time, cancels, deadlines, pages, statistics."""

from __future__ import annotations

from typing import Any

import pytest

from batchrun.sandbox import SandboxConfig, SandboxState
from batchrun.sandbox.predictions import Origins, Prediction, iso, microseconds, render
from batchrun.sandbox.store import Target

ORIGINS = Origins(api="http://api", files="http://files")
START = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> SandboxState:
    return SandboxState(SandboxConfig(latency=2.0), clock=clock)


def made(state: SandboxState, **inputs: Any) -> Prediction:
    return state.create(state.target_for_model("acme", "painter"), inputs)


def shown(state: SandboxState, prediction: Prediction) -> dict[str, Any]:
    return render(prediction, state.clock(), ORIGINS, file_ttl=3600, remove_data=True)


def test_a_prediction_starts_processes_and_succeeds(state: SandboxState, clock: Clock) -> None:
    prediction = made(state)
    assert shown(state, prediction)["status"] == "starting"
    assert "started_at" not in shown(state, prediction)
    clock.now += 0.5
    processing = shown(state, prediction)
    assert processing["status"] == "processing"
    assert processing["started_at"] == iso(START + 0.5)
    assert processing["logs"].startswith("Using seed: ")
    clock.now += 1.5
    done = shown(state, prediction)
    assert done["status"] == "succeeded"
    assert done["completed_at"] == iso(START + 2)
    assert done["metrics"] == {"predict_time": 1.5, "total_time": 2.0, "image_count": 1}
    assert done["output"] == [f"http://files/delivery/{prediction.id}/out-0.png"]
    assert done["logs"].endswith(f"100%| 4/4 steps\nPrediction {prediction.id} succeeded\n")


def test_a_create_answer_that_is_not_final_says_starting(state: SandboxState, clock: Clock) -> None:
    prediction = made(state)
    clock.now += 1
    body = render(prediction, clock.now, ORIGINS, file_ttl=3600, remove_data=True, create=True)
    assert body["status"] == "starting"
    assert "started_at" not in body


def test_a_cancel_before_the_start_has_no_start(state: SandboxState, clock: Clock) -> None:
    prediction = made(state)
    clock.now += 0.1
    state.cancel(prediction.id)
    clock.now += 10
    body = shown(state, prediction)
    assert body["status"] == "canceled"
    assert "started_at" not in body
    assert body["completed_at"] == iso(START + 0.1)
    assert body["metrics"]["predict_time"] == 0.0


def test_cancel_after_a_prediction_ended_changes_nothing(state: SandboxState, clock: Clock) -> None:
    prediction = made(state)
    clock.now += 5
    state.cancel(prediction.id)
    assert shown(state, prediction)["status"] == "succeeded"
    assert state.cancel("missing") is None


def test_a_deadline_cancels_what_runs_longer(state: SandboxState, clock: Clock) -> None:
    target = state.target_for_model("acme", "painter")
    late = state.create(target, {}, cancel_after=1.0)
    early = state.create(target, {"sandbox_latency": 0.5}, cancel_after=1.0)
    clock.now += 1.0
    assert [shown(state, p)["status"] for p in (late, early)] == ["canceled", "succeeded"]


def test_data_is_removed_after_the_ttl(state: SandboxState, clock: Clock) -> None:
    prediction = made(state, prompt="x")
    clock.now += 2 + 60
    body = render(prediction, clock.now, ORIGINS, file_ttl=60, remove_data=True)
    assert (body["data_removed"], body["input"], body["output"], body["logs"]) == (
        True,
        {},
        None,
        "",
    )
    kept = render(prediction, clock.now, ORIGINS, file_ttl=60, remove_data=False)
    assert kept["data_removed"] is False


def test_pages_go_newest_first_within_time_filters(state: SandboxState, clock: Clock) -> None:
    state.configure(page_size=2)
    created = []
    for _ in range(5):
        created.append(made(state))
        clock.now += 1
    first, cursor = state.page(None, None, None)
    assert first == created[4:2:-1]
    second, cursor = state.page(None, None, cursor)
    assert second == created[2:0:-1]
    third, cursor = state.page(None, None, cursor)
    assert (third, cursor) == ([created[0]], None)
    window, cursor = state.page(microseconds(START + 1), microseconds(START + 3), None)
    assert (window, cursor) == (created[2:0:-1], None)


def test_creation_times_never_go_backwards(state: SandboxState, clock: Clock) -> None:
    first = made(state)
    clock.now -= 5
    second = made(state)
    assert second.created_at == first.created_at


def test_snapshot_counts_statuses_and_events(state: SandboxState, clock: Clock) -> None:
    made(state)
    made(state, sandbox_status="failed")
    clock.now += 3
    made(state)
    state.record("GET /x", "200")
    state.record("GET /x", "503")
    state.record("POST /y", "429")
    stats = state.snapshot()
    assert stats["predictions"] == {"succeeded": 1, "failed": 1, "starting": 1}
    assert stats["requests"] == {"GET /x": 2, "POST /y": 1}
    assert (stats["creates"], stats["server_errors"], stats["throttled"]) == (3, 1, 1)
    assert stats["models"] == {"acme/painter": 1}


def test_reset_forgets_everything_but_the_settings(state: SandboxState) -> None:
    state.configure(latency=7.0)
    prediction = made(state)
    state.bump_version("acme", "painter")
    state.reset()
    assert state.get(prediction.id) is None
    assert state.snapshot()["creates"] == 0
    assert state.snapshot()["models"] == {}
    assert state.config.latency == 7.0


def test_a_new_rate_limit_keeps_the_fault_dice_rolling(state: SandboxState) -> None:
    state.configure(seed=9)
    before = [state.faults.roll("error", 0.5) for _ in range(10)]
    state.configure(seed=9)
    state.faults.roll("error", 0.5)
    state.configure(rate_limit="5/s")
    after_limit = [state.faults.roll("error", 0.5) for _ in range(9)]
    assert after_limit == before[1:]


def test_targets_by_version_reference(state: SandboxState) -> None:
    latest = state.target_for_model("acme", "painter").version.id
    assert state.target_for_version(latest).model == "acme/painter"
    assert state.target_for_version(f"acme/painter:{latest}").shown_version == latest
    official = state.target_for_version("black-forest-labs/flux-schnell")
    assert official.shown_version == "hidden"


def test_deployments_run_the_latest_version(state: SandboxState) -> None:
    target = state.target_for_model("acme", "prod", deployment=True)
    assert target == Target("acme/prod", target.version, target.version.id, deployment="acme/prod")
