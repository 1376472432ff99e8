"""The /_sandbox control endpoints, as a benchmark in another process would use them."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from batchrun.sandbox import Sandbox


def test_stats_count_requests_answers_and_statuses(
    api: httpx.Client, http: httpx.Client, sandbox: Sandbox
) -> None:
    api.post("/v1/models/acme/painter/predictions", json={"input": {}}, headers={"Prefer": "wait"})
    api.get("/v1/predictions/missing")
    stats = http.get(f"{sandbox.base_url}/_sandbox/stats").json()
    assert stats["requests"] == {
        "POST /v1/models/{owner}/{name}/predictions": 1,
        "GET /v1/predictions/{prediction_id}": 1,
    }
    assert stats["responses"] == {"201": 1, "404": 1}
    assert stats["predictions"] == {"succeeded": 1}
    assert (stats["creates"], stats["held"], stats["max_held"]) == (1, 0, 1)


def test_config_can_be_read_and_changed(http: httpx.Client, sandbox: Sandbox) -> None:
    url = f"{sandbox.base_url}/_sandbox/config"
    assert http.get(url).json()["latency"] == 0.05
    changed = http.post(url, json={"error_rate": 0.25, "error_methods": ["get", "post"]})
    assert changed.status_code == 200
    assert (changed.json()["error_rate"], changed.json()["error_methods"]) == (
        0.25,
        ["GET", "POST"],
    )
    assert sandbox.state.config.error_rate == 0.25


def test_a_bad_config_change_is_400_and_changes_nothing(
    http: httpx.Client, sandbox: Sandbox
) -> None:
    answer = http.post(
        f"{sandbox.base_url}/_sandbox/config", json={"error_rate": 0.5, "latency": "slow"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == (
        "invalid sandbox settings: latency must be a number of seconds of at least 0, got 'slow'"
    )
    assert sandbox.state.config.error_rate == 0


def test_bump_answers_the_new_latest_version(
    api: httpx.Client, http: httpx.Client, sandbox: Sandbox
) -> None:
    bumped = http.post(f"{sandbox.base_url}/_sandbox/models/acme/painter/bump").json()
    latest = api.get("/v1/models/acme/painter").json()["latest_version"]["id"]
    assert bumped == {"model": "acme/painter", "version": latest}


def test_reset_forgets_predictions(api: httpx.Client, http: httpx.Client, sandbox: Sandbox) -> None:
    created = api.post("/v1/models/acme/painter/predictions", json={"input": {}}).json()
    assert http.post(f"{sandbox.base_url}/_sandbox/reset").json() == {"reset": True}
    assert api.get(f"/v1/predictions/{created['id']}").status_code == 404
    assert api.get("/v1/predictions").json()["results"] == []


def test_control_endpoints_need_no_token_and_take_no_faults(
    make_sandbox: Callable[..., Sandbox], http: httpx.Client
) -> None:
    sandbox = make_sandbox(error_rate=1.0, reset_rate=1.0, tokens=["only"])
    statuses = [http.get(f"{sandbox.base_url}/_sandbox/stats").status_code for _ in range(5)]
    assert statuses == [200] * 5
