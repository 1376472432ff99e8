"""The client against the sandbox's injected faults, over real sockets: it recovers where it may
(429 storms, 5xx and resets on reads) and fails clearly where it must (a create whose answer was
lost, a 422, an expired file)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from leaks import TOKEN

from batchrun.api.client import Client
from batchrun.api.ratelimit import RateLimiter
from batchrun.api.retry import RetryPolicy
from batchrun.errors import (
    ApiConnectionError,
    ExpiredURLError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
)
from batchrun.sandbox import Sandbox
from batchrun.spec.target import Target

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]

QUICK = RetryPolicy(attempts=8, backoff_base=0.01, backoff_cap=0.05, rate_limit_budget=30)
FLUX = Target("model", "acme", "flux")
CREATE = "POST /v1/models/{owner}/{name}/predictions"
GET = "GET /v1/predictions/{prediction_id}"


def client_for(sandbox: Sandbox, **options: Any) -> Client:
    options.setdefault("retry", QUICK)
    options.setdefault("create_limiter", RateLimiter(1000))
    options.setdefault("request_limiter", RateLimiter(1000))
    return Client(sandbox.base_url, TOKEN, **options)


async def test_a_429_storm_slows_creates_down_and_every_one_succeeds(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # The server takes 20 creates per second in bursts of 10; the client asks for 1000/s.
    sandbox = make_sandbox(rate_limit="20/s", rate_limit_burst=10)
    async with client_for(sandbox) as client:
        created: list[str] = []

        async def one(seed: int) -> None:
            created.append((await client.create(FLUX, {"seed": seed}, wait=0)).id)

        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for seed in range(30):
                tg.start_soon(one, seed)
        elapsed = anyio.current_time() - start
    stats = sandbox.state.snapshot()
    assert len(set(created)) == 30
    assert stats["creates"] == 30  # a 429 creates nothing, so nothing was created twice
    assert stats["throttled"] == client.stats.rate_limited > 0
    assert client.create_limiter.pauses == client.stats.rate_limited
    # The sandbox asks for whole seconds, so at least one full second was waited.
    assert elapsed >= 1.0


async def test_5xx_on_reads_are_retried_until_they_succeed(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    async with client_for(sandbox) as client:
        created = await client.create(FLUX, {"prompt": "a fox"}, wait=0)
        sandbox.configure(error_rate=0.5, error_methods=["GET"], error_status=502)
        for _ in range(10):
            assert (await client.get(created.id)).id == created.id
    assert client.stats.server_errors > 0
    assert client.stats.server_errors == sandbox.state.snapshot()["server_errors"]
    assert client.stats.retries == client.stats.server_errors


async def test_a_read_that_always_gets_5xx_fails_with_the_proxy_page_title(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(error_rate=1.0, error_methods=["GET"], error_status=503)
    async with client_for(sandbox) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("abc")
    assert str(caught.value) == (
        f"GET {sandbox.base_url}/v1/predictions/abc: 503 Service Unavailable"
    )
    assert sandbox.state.snapshot()["requests"][GET] == 8


async def test_a_create_answered_5xx_is_sent_once_and_outcome_unknown(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(error_rate=1.0, error_methods=["POST"], error_status=502)
    async with client_for(sandbox) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create(FLUX, {"prompt": "a fox"})
    assert str(caught.value) == (
        f"POST {sandbox.base_url}/v1/models/acme/flux/predictions: 502 Bad Gateway;"
        " the prediction may have been created anyway"
    )
    assert sandbox.state.snapshot()["requests"][CREATE] == 1


async def test_connection_resets_on_reads_are_retried(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox()
    async with client_for(sandbox) as client:
        created = await client.create(FLUX, {"prompt": "a fox"}, wait=0)
        sandbox.configure(reset_rate=0.4, reset_methods=["GET"])
        for _ in range(10):
            assert (await client.get(created.id)).id == created.id
    resets = sandbox.state.snapshot()["resets"]
    assert resets > 0
    assert client.stats.network_errors == resets


async def test_a_reset_create_is_sent_once_and_outcome_unknown(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(reset_rate=1.0, reset_methods=["POST"])
    async with client_for(sandbox) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create(FLUX, {"prompt": "a fox"})
    message = str(caught.value)
    assert message.startswith(
        f"POST {sandbox.base_url}/v1/models/acme/flux/predictions: no answer ("
    )
    assert message.endswith("); the prediction may have been created anyway")
    assert sandbox.state.snapshot()["requests"][CREATE] == 1


async def test_a_create_whose_answer_was_lost_can_be_found_in_the_list(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(lose_create_response_rate=1.0)
    async with client_for(sandbox) as client:
        with pytest.raises(OutcomeUnknownError):
            await client.create(FLUX, {"prompt": "lost"}, wait=0)
        found = [p async for p in client.list_predictions()]
    stats = sandbox.state.snapshot()
    assert (stats["creates"], stats["lost_creates"]) == (1, 1)
    assert [p.input.get("prompt") for p in found] == ["lost"]


async def test_slow_answers_time_out_clearly_after_the_retries(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(response_delay=1.0)
    policy = RetryPolicy(attempts=2, backoff_base=0.01, backoff_cap=0.01)
    async with client_for(sandbox, read_timeout=0.2, retry=policy) as client:
        with pytest.raises(ApiConnectionError) as caught:
            await client.get("abc")
        with pytest.raises(OutcomeUnknownError) as lost:
            await client.create(FLUX, {"prompt": "slow"}, wait=0)
    assert str(caught.value) == (
        f"GET {sandbox.base_url}/v1/predictions/abc: timed out (ReadTimeout)"
    )
    assert str(lost.value) == (
        f"POST {sandbox.base_url}/v1/models/acme/flux/predictions: no answer (ReadTimeout);"
        " the prediction may have been created anyway"
    )
    assert client.stats.gets == 2
    assert client.stats.creates == 1


async def test_slow_answers_within_the_timeout_are_simply_slow(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(response_delay=0.3)
    async with client_for(sandbox, read_timeout=5) as client:
        created = await client.create(FLUX, {"prompt": "a fox"}, wait=0)
        assert (await client.get(created.id)).id == created.id
    assert client.stats.retries == 0


async def test_prefer_wait_returns_the_finished_prediction(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(latency=0.3)
    async with client_for(sandbox, read_timeout=0.1) as client:
        # The read timeout is wait + read_timeout: a held request is not a slow one.
        done = await client.create(FLUX, {"prompt": "a fox"}, wait=5)
    assert done.status == "succeeded"
    assert done.terminal


async def test_a_422_names_the_invalid_field(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    async with client_for(sandbox) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.create(Target("model", "a", "b"), {"num_outputs": 9})
    assert str(caught.value) == (
        f"POST {sandbox.base_url}/v1/models/a/b/predictions: 422 Input validation failed:"
        " input.num_outputs: Must be less than or equal to 4"
    )
    assert caught.value.invalid_fields == ("input.num_outputs",)


async def test_an_expired_output_url_is_an_expired_url_error(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    # The sandbox's clock runs with the real one until the test moves it past the file's life
    # (a real wait of the TTL would race a busy machine: the first download could come late).
    ahead = [0.0]
    sandbox = make_sandbox(file_ttl=60, remove_data=False, clock=lambda: time.time() + ahead[0])
    async with client_for(sandbox) as client:
        done = await client.create(FLUX, {"prompt": "a fox"}, wait=5)
        url = done.output[0]
        got = await client.download(url, tmp_path / "fresh.png")
        assert got.bytes > 0
        ahead[0] = 61  # past the sandbox's file_ttl: this is what is tested
        with pytest.raises(ExpiredURLError) as caught:
            await client.download(url, tmp_path / "late.png")
    assert str(caught.value) == f"output URL expired or gone: 404 from {url}"
    assert sorted(os.listdir(tmp_path)) == ["fresh.png"]


async def test_a_sandbox_without_the_list_endpoint_is_not_found(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(list_endpoint=False)
    async with client_for(sandbox) as client:
        with pytest.raises(NotFoundError) as caught:
            [p async for p in client.list_predictions()]
    assert str(caught.value) == (
        f"GET {sandbox.base_url}/v1/predictions: 404 Not found; this API has no such endpoint"
    )


async def test_slow_downloads_complete(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(download_bytes_per_second=200_000)
    async with client_for(sandbox) as client:
        done = await client.create(FLUX, {"prompt": "a fox"}, wait=5)
        got = await client.download(done.output[0], tmp_path / "a.png")
    assert got.bytes == sandbox.state.snapshot()["download_bytes"]
    assert (tmp_path / "a.png").stat().st_size == got.bytes


async def test_a_proxy_like_sandbox_is_polled_at_the_base_url_not_at_its_urls(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # Like the proxy: `urls` point at api.replicate.com (unreachable from here), versions `dp-…`.
    sandbox = make_sandbox(
        urls_host="https://api.replicate.com", proxy_versions=True, page_size=2, latency=0.1
    )
    flux = Target("model", "black-forest-labs", "flux-schnell")
    async with client_for(sandbox) as client:
        ids = [(await client.create(flux, {"seed": seed}, wait=0)).id for seed in range(4)]
        last = await client.create(flux, {"seed": 4}, wait=5)
        ids.append(last.id)
        first = await client.get(ids[0])
        listed = [p.id async for p in client.list_predictions()]
    assert first.urls["get"] == f"https://api.replicate.com/v1/predictions/{ids[0]}"
    assert last.status == "succeeded"
    assert last.version.startswith("dp-")
    assert sorted(listed) == sorted(ids)
    assert client.stats.lists == 3
