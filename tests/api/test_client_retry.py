"""The retry policy, on virtual time with the real default backoff: 429 waits, 5xx and network
retries, and the creates that must never be sent twice.

Every test runs on trio with an autojumping MockClock (see test_ratelimit.virtual_time), so a
60-second Retry-After takes no wall time and the waits asserted are exact.
"""

from __future__ import annotations

import email.utils
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from leaks import TOKEN
from scripted import FLUX, Script, ok, page, prediction, problem
from virtual import virtual_time

from batchrun.api import retry
from batchrun.api.client import FIRST_CONTACT_TRIES, Client
from batchrun.api.ratelimit import RateLimiter
from batchrun.errors import (
    ApiConnectionError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
)

pytestmark = pytest.mark.usefixtures("errors_never_show_token")


def throttled(retry_after: str | None = None, body_after: float | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/problem+json"}
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    body: dict[str, Any] = {"title": "Request was throttled.", "status": 429}
    body["detail"] = "Request was throttled. Expected available in 7 seconds."
    if body_after is not None:
        body["retry_after"] = body_after
    return httpx.Response(429, json=body, headers=headers)


class Clocked(Script):
    """A Script that also notes the (virtual) time of every request."""

    def __init__(self, *answers: Any) -> None:
        super().__init__(*answers)
        self.times: list[float] = []
        self.start = anyio.current_time()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.times.append(anyio.current_time() - self.start)
        return super().__call__(request)


def client_on(script: Script, **options: Any) -> Client:
    options.setdefault("create_limiter", RateLimiter(10))
    options.setdefault("request_limiter", RateLimiter(50))
    return Client("https://api.test", TOKEN, transport=httpx.MockTransport(script), **options)


# 429 --------------------------------------------------------------------------------------


@virtual_time
async def test_a_429_on_create_waits_retry_after_pauses_creates_and_retries() -> None:
    script = Clocked(throttled("7"), ok(status=201))
    async with client_on(script) as client:
        created = await client.create(FLUX, {"prompt": "a fox"})
    assert created.id == "p1"
    assert len(script.requests) == 2
    # After the pause the bucket starts empty: one token at the (halved) rate of 5/s.
    assert script.times == [0.0, pytest.approx(7.2)]
    assert client.create_limiter.pauses == 1
    assert client.request_limiter.pauses == 0
    assert client.create_limiter.current_rate == 5
    assert client.create_limiter.acquired == 2  # every attempt acquired the limiter
    assert (client.stats.rate_limited, client.stats.retries, client.stats.creates) == (1, 1, 2)


@virtual_time
async def test_a_429_waits_the_body_retry_after_when_there_is_no_header() -> None:
    script = Clocked(throttled(body_after=2.5), ok())
    async with client_on(script) as client:
        await client.get("p1")
    assert script.times[1] == pytest.approx(2.5 + 1 / 25)
    assert client.request_limiter.pauses == 1
    assert client.create_limiter.pauses == 0


@virtual_time
async def test_the_header_wins_over_the_body() -> None:
    script = Clocked(throttled("3", body_after=0.5), ok())
    async with client_on(script) as client:
        await client.get("p1")
    assert 3.0 <= script.times[1] < 3.1


@virtual_time
async def test_a_429_waits_until_an_http_date(monkeypatch: pytest.MonkeyPatch) -> None:
    # The wall clock stands still at half past a second (the header has whole seconds): the
    # wait is the date less the time it was read, exactly, however busy the machine.
    now = 1_800_000_000.5
    monkeypatch.setattr(retry, "time", SimpleNamespace(time=lambda: now))
    when = email.utils.formatdate(now + 30, usegmt=True)
    script = Clocked(throttled(when), ok())
    async with client_on(script) as client:
        await client.get("p1")
    # 29.5 s, then a token at the halved rate of 25/s (as the body's retry_after above).
    assert script.times[1] == pytest.approx(29.5 + 1 / 25)


@virtual_time
async def test_a_429_without_any_hint_backs_off() -> None:
    script = Clocked(throttled(), throttled("0"), ok())
    async with client_on(script) as client:
        await client.get("p1")
    first, second = script.times[1], script.times[2] - script.times[1]
    # Backoff (half fixed, half jitter), then a token at the rate each 429 halved: 50 → 25 → 12.5.
    assert 0.25 <= first <= 0.5 + 1 / 25
    assert 0.5 <= second <= 1.0 + 1 / 12.5


@virtual_time
async def test_a_429_holds_back_every_other_task_too() -> None:
    script = Clocked(throttled("10"), ok())
    async with client_on(script) as client:

        async def late() -> None:
            await anyio.sleep(1)
            await client.get("p2")

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, "p1")
            tg.start_soon(late)
    assert script.urls[0] == "https://api.test/v1/predictions/p1"
    assert len(script.requests) == 3
    assert script.times[0] == 0.0
    assert min(script.times[1:]) >= 10.0


@virtual_time
async def test_a_lower_server_limit_slows_creates_down_without_failing_them() -> None:
    # The server allows one create per 2 s; every other one gets a 429 with Retry-After 2.
    allowed_at = [0.0]

    def server(request: httpx.Request) -> httpx.Response:
        now = anyio.current_time()
        if now < allowed_at[0]:
            return throttled(str(max(1, round(allowed_at[0] - now))))
        allowed_at[0] = now + 2
        return ok(status=201)

    start = anyio.current_time()
    async with client_on(Script(server)) as client, anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(client.create, FLUX, {})
    elapsed = anyio.current_time() - start
    assert client.stats.creates - client.stats.rate_limited == 10
    assert client.stats.rate_limited >= 1
    assert 18 <= elapsed < 60


@virtual_time
async def test_persistent_429s_give_up_after_the_total_wait_budget() -> None:
    script = Clocked(throttled("60"))
    async with client_on(script) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.create(FLUX, {})
    # Ten waits of 60 s fill the 600 s budget; the eleventh 429 ends it. On top of the waits,
    # the limiter spaces each retry by its halved and halved again rate (0.2 s ... 6.4 s).
    assert len(script.requests) == 11
    assert script.times[-1] == pytest.approx(600 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 * 6.4)
    error = caught.value
    assert error.retry_after == 60
    assert str(error) == (
        "POST https://api.test/v1/models/black-forest-labs/flux-schnell/predictions: 429 Request"
        " was throttled. Expected available in 7 seconds; gave up after waiting 600 s in all for"
        " the rate limit"
    )


# 5xx and the network, on idempotent requests ----------------------------------------------


@virtual_time
async def test_a_get_answered_5xx_is_retried_until_it_succeeds() -> None:
    script = Clocked(
        httpx.Response(503, text="busy"), problem(500, "Internal", "oops"), ok(prediction("p1"))
    )
    async with client_on(script) as client:
        got = await client.get("p1")
    assert got.id == "p1"
    assert len(script.requests) == 3
    assert (client.stats.server_errors, client.stats.retries, client.stats.gets) == (2, 2, 3)
    assert client.request_limiter.acquired == 3
    assert 0.25 <= script.times[1] <= 0.5 + 0.05
    assert 0.5 <= script.times[2] - script.times[1] <= 1.0 + 0.05


@virtual_time
async def test_network_errors_on_get_are_retried() -> None:
    script = Clocked(
        httpx.ConnectError("refused"), httpx.ReadTimeout(""), httpx.ReadError("reset"), ok()
    )
    async with client_on(script) as client:
        await client.get("p1")
    assert len(script.requests) == 4
    assert client.stats.network_errors == 3


@virtual_time
async def test_a_get_that_keeps_failing_gives_up_after_capped_backoff() -> None:
    script = Clocked(httpx.Response(502, html="<title>502 Bad Gateway</title>"))
    async with client_on(script) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    assert str(caught.value) == "GET https://api.test/v1/predictions/p1: 502 Bad Gateway"
    assert len(script.requests) == 8
    gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
    ceilings = [0.5, 1, 2, 4, 8, 16, 30]  # 0.5 s doubling, capped at 30 s
    for gap, ceiling in zip(gaps, ceilings, strict=True):
        assert ceiling / 2 <= gap <= ceiling + 0.05


@pytest.mark.parametrize("method", ["cancel", "get_model", "upload", "list"])
@virtual_time
async def test_every_idempotent_call_retries_a_5xx(method: str) -> None:
    good = {
        "cancel": ok(prediction("p1", "canceled")),
        "get_model": httpx.Response(200, json={"owner": "a", "name": "b"}),
        "upload": httpx.Response(201, json={"id": "f", "urls": {"get": "https://api.test/f"}}),
        "list": page(["a"], None),
    }[method]
    script = Clocked(httpx.Response(503), good)
    async with client_on(script) as client:
        if method == "cancel":
            await client.cancel("p1")
        elif method == "get_model":
            await client.get_model("a", "b")
        elif method == "upload":
            await client.upload(b"x", filename="x.txt", content_type="text/plain")
        else:
            assert [p.id async for p in client.list_predictions()] == ["a"]
    assert len(script.requests) == 2
    assert script.requests[0].url == script.requests[1].url


# Creates ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@virtual_time
async def test_a_create_answered_5xx_is_outcome_unknown_and_sent_once(status: int) -> None:
    script = Clocked(httpx.Response(status, html="<title>Oops</title>"))
    async with client_on(script) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create(FLUX, {})
    assert len(script.requests) == 1
    assert str(caught.value) == (
        f"POST https://api.test/v1/models/black-forest-labs/flux-schnell/predictions: {status}"
        " Oops; the prediction may have been created anyway"
    )
    assert caught.value.status == status
    assert client.stats.server_errors == 1


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout(""),
        httpx.ReadError("Connection reset by peer"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.WriteError("Broken pipe"),
        httpx.WriteTimeout(""),
    ],
)
@virtual_time
async def test_a_create_whose_answer_was_lost_is_outcome_unknown_and_sent_once(
    exc: Exception,
) -> None:
    script = Clocked(exc, ok(status=201))
    async with client_on(script) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create(FLUX, {})
    assert len(script.requests) == 1
    reason = str(exc) or type(exc).__name__
    assert str(caught.value) == (
        "POST https://api.test/v1/models/black-forest-labs/flux-schnell/predictions: no answer"
        f" ({reason}); the prediction may have been created anyway"
    )


@pytest.mark.parametrize("exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("")])
@virtual_time
async def test_a_create_that_never_connected_is_retried(exc: Exception) -> None:
    script = Clocked(exc, ok(status=201))
    async with client_on(script) as client:
        created = await client.create(FLUX, {"prompt": "a fox"})
    assert created.id == "p1"
    assert len(script.requests) == 2
    assert script.body(0) == script.body(1) == {"input": {"prompt": "a fox"}}
    assert client.create_limiter.acquired == 2
    assert client.stats.network_errors == 1


@virtual_time
async def test_a_create_that_can_never_connect_gives_up_within_seconds() -> None:
    # Refused from the first request on: a wrong base URL or no network, said at once.
    script = Clocked(httpx.ConnectError("[Errno 111] Connection refused"))
    async with client_on(script) as client:
        with pytest.raises(ApiConnectionError) as caught:
            await client.create(FLUX, {})
    assert len(script.requests) == FIRST_CONTACT_TRIES == 3
    assert script.times[-1] <= 0.5 + 1.0  # two backoffs, at most 0.5 s and 1 s
    assert str(caught.value) == (
        "POST https://api.test/v1/models/black-forest-labs/flux-schnell/predictions: no answer"
        " ([Errno 111] Connection refused)"
    )


@virtual_time
async def test_once_the_api_has_answered_a_refused_connection_gets_every_retry() -> None:
    # A server restarting mid-run refuses for a while: that is worth the whole backoff.
    script = Clocked(ok(), *[httpx.ConnectError("[Errno 111] Connection refused")] * 7, ok())
    async with client_on(script) as client:
        await client.get("p1")
        await client.get("p1")
    assert len(script.requests) == 9
    assert client.stats.network_errors == 7

    # A slow network is not a refusal: connect timeouts get every retry from the start.
    script = Clocked(*[httpx.ConnectTimeout("")] * 5, ok())
    async with client_on(script) as client:
        await client.get("p1")
    assert len(script.requests) == 6
