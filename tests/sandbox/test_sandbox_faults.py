"""Fault injection over real sockets: each fault does what it says, the same way for a seed."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from batchrun.sandbox import Sandbox, SandboxConfig, create_app
from batchrun.sandbox.config import parse_rate
from batchrun.sandbox.faults import ConnectionDropped, Faults, TokenBucket

AUTH = {"Authorization": "Bearer r8_test"}
CREATE = "/v1/models/acme/painter/predictions"
PROXY_503 = (
    "<html>\r\n<head><title>503 Service Unavailable</title></head>\r\n<body>\r\n"
    "<center><h1>503 Service Unavailable</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def client(sandbox: Sandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.base_url, headers=AUTH, verify=False)


# Rate limit -------------------------------------------------------------------------------


def test_creates_past_the_rate_limit_get_429_with_retry_after(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(rate_limit="2/s")
    with client(sandbox) as api:
        statuses = [api.post(CREATE, json={"input": {}}).status_code for _ in range(2)]
        throttled = api.post(CREATE, json={"input": {}})
        assert api.get("/v1/predictions").status_code == 200
    assert statuses == [202, 202]
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    assert throttled.headers["content-type"] == "application/problem+json"
    body = throttled.json()
    assert 0.4 < body.pop("retry_after") <= 0.5
    assert body == {
        "title": "Request was throttled.",
        "detail": "Request was throttled. Expected available in 1 second.",
        "status": 429,
    }
    stats = sandbox.state.snapshot()
    assert (stats["throttled"], stats["creates"]) == (1, 2)


@pytest.mark.parametrize(("settings", "burst"), [({}, 10), ({"rate_limit_burst": 3}, 3)])
def test_the_burst_is_a_second_of_the_rate_unless_set(
    make_sandbox: Callable[..., Sandbox], settings: dict[str, int], burst: int
) -> None:
    # The sandbox's clock stands still, so no token comes back while the requests go out,
    # however slowly a busy machine sends them.
    sandbox = make_sandbox(rate_limit="600/min", clock=lambda: 1_000_000.0, **settings)
    with client(sandbox) as api:
        statuses = [api.post(CREATE, json={"input": {}}).status_code for _ in range(burst + 1)]
    assert statuses == [202] * burst + [429]


def test_the_bucket_refills_at_the_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(parse_rate("2/s"), clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [None, None]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.25
    assert bucket.take() == pytest.approx(0.25)
    now[0] += 0.25
    assert bucket.take() is None
    now[0] += 60
    assert [bucket.take(), bucket.take(), bucket.take() is not None] == [None, None, True]


# Server errors ----------------------------------------------------------------------------


def test_error_rate_answers_get_with_a_proxy_page(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(error_rate=1.0)
    with client(sandbox) as api:
        failed = api.get("/v1/models/acme/painter")
        created = api.post(CREATE, json={"input": {}})
    assert failed.status_code == 503
    assert failed.headers["content-type"] == "text/html; charset=utf-8"
    assert failed.text == PROXY_503
    assert created.status_code == 202
    assert sandbox.state.snapshot()["server_errors"] == 1


def test_error_methods_and_status_are_settable(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(error_rate=1.0, error_methods=["post"], error_status=502)
    with client(sandbox) as api:
        assert api.get("/v1/models/acme/painter").status_code == 200
        failed = api.post(CREATE, json={"input": {}})
    assert failed.status_code == 502
    assert "<title>502 Bad Gateway</title>" in failed.text
    assert sandbox.state.snapshot()["creates"] == 0


def _statuses(sandbox: Sandbox, count: int) -> list[int]:
    with client(sandbox) as api:
        return [api.get("/v1/models/acme/painter").status_code for _ in range(count)]


def test_the_same_seed_gives_the_same_errors(make_sandbox: Callable[..., Sandbox]) -> None:
    first = _statuses(make_sandbox(error_rate=0.5, seed=7), 30)
    second = _statuses(make_sandbox(error_rate=0.5, seed=7), 30)
    other = _statuses(make_sandbox(error_rate=0.5, seed=8), 30)
    assert first == second
    assert first != other
    assert set(first) == {200, 503}


def test_setting_the_seed_restarts_the_sequence(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(error_rate=0.5, seed=3)
    first = _statuses(sandbox, 20)
    sandbox.configure(seed=3)
    assert _statuses(sandbox, 20) == first


# Dropped connections ----------------------------------------------------------------------


def test_reset_rate_drops_the_connection_unanswered(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(reset_rate=1.0)
    with client(sandbox) as api, pytest.raises(httpx.ReadError, match="Connection reset by peer"):
        api.get("/v1/models/acme/painter")
    stats = sandbox.state.snapshot()
    assert (stats["resets"], stats["responses"]) == (1, {"dropped": 1})


def test_reset_methods_filter_the_resets(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(reset_rate=1.0, reset_methods=["POST"])
    with client(sandbox) as api:
        assert api.get("/v1/models/acme/painter").status_code == 200
        with pytest.raises(httpx.TransportError):
            api.post(CREATE, json={"input": {}})
    assert sandbox.state.snapshot()["creates"] == 0


def test_a_lost_create_response_still_creates(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(lose_create_response_rate=1.0)
    with client(sandbox) as api:
        with pytest.raises(httpx.ReadError):
            api.post(CREATE, json={"input": {"prompt": "lost"}}, headers={"Prefer": "wait"})
        listed = api.get("/v1/predictions").json()["results"]
    assert [(p["input"], p["status"]) for p in listed] == [({"prompt": "lost"}, "succeeded")]
    stats = sandbox.state.snapshot()
    assert (stats["creates"], stats["lost_creates"]) == (1, 1)


@pytest.mark.anyio
async def test_in_process_a_drop_is_an_exception() -> None:
    app = create_app(SandboxConfig(reset_rate=1.0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as api:
        with pytest.raises(ConnectionDropped):
            await api.get("/v1/models/acme/painter", headers=AUTH)


# Slowness and waiting ---------------------------------------------------------------------


def test_without_honor_wait_a_create_answers_at_once(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(honor_wait=False, latency=5)
    with client(sandbox) as api:
        answer = api.post(CREATE, json={"input": {}}, headers={"Prefer": "wait=60"})
    assert answer.status_code == 202
    assert answer.json()["status"] == "starting"
    assert answer.elapsed.total_seconds() < 1


def test_response_delay_slows_every_answer(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(response_delay=0.3)
    with client(sandbox) as api:
        answer = api.get("/v1/models/acme/painter")
    assert answer.status_code == 200
    assert answer.elapsed.total_seconds() >= 0.3


# Simulation dice --------------------------------------------------------------------------


def test_failures_follow_the_seed(make_sandbox: Callable[..., Sandbox]) -> None:
    def outcomes(seed: int) -> list[str]:
        sandbox = make_sandbox(failure_rate=0.5, seed=seed, latency=0)
        with client(sandbox) as api:
            return [api.post(CREATE, json={"input": {}}).json()["status"] for _ in range(20)]

    first = outcomes(11)
    assert first == outcomes(11)
    assert set(first) == {"succeeded", "failed"}


def test_jitter_spreads_latency_within_bounds_and_never_below_zero() -> None:
    config = SandboxConfig(latency=1.0, jitter=0.5, seed=5)
    dice = Faults(config)
    spread = [dice.latency(config) for _ in range(200)]
    assert all(0.5 <= value <= 1.5 for value in spread)
    assert max(spread) - min(spread) > 0.8
    replay = Faults(config)
    assert [replay.latency(config) for _ in range(200)] == spread
    wide = SandboxConfig(latency=0.1, jitter=1.0)
    dice = Faults(wide)
    clamped = [dice.latency(wide) for _ in range(100)]
    assert min(clamped) == 0.0
    assert max(clamped) > 0.5
