"""ShardedTransport over real sockets: the connection cap holds, the pools share the load, and
every slot comes back however a request ends."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from test_token_safety import TOKEN, errors_never_show_token  # noqa: F401  (a fixture)

from batchrun.client import Client
from batchrun.errors import ApiConnectionError
from batchrun.httppool import ShardedTransport
from batchrun.httpretry import RetryPolicy
from batchrun.ratelimit import RateLimiter
from batchrun.sandbox import Sandbox
from batchrun.target import Target

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]

FLUX = Target("model", "acme", "flux")


def client_on(sandbox: Sandbox, transport: httpx.AsyncBaseTransport | None) -> Client:
    return Client(
        sandbox.base_url,
        TOKEN,
        transport=transport,
        create_limiter=RateLimiter(1000),
        request_limiter=RateLimiter(1000),
        retry=RetryPolicy(attempts=2, backoff_base=0.001, backoff_cap=0.001),
    )


class Watched(ShardedTransport):
    """Notes the requests in flight per pool each time an answer arrives."""

    def __init__(self, max_connections: int, *, pool_size: int) -> None:
        super().__init__(max_connections, pool_size=pool_size)
        self.seen: list[tuple[int, ...]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.seen.append(self.busy)
        return response


async def test_no_more_requests_are_in_flight_than_connections(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # Each create is held by Prefer: wait until its prediction ends, so each holds a connection;
    # their latencies differ, so the first answer comes while the other three are still held.
    sandbox = make_sandbox()
    transport = Watched(4, pool_size=2)
    async with client_on(sandbox, transport) as client, anyio.create_task_group() as tg:
        for seed in range(12):
            latency = 0.1 + 0.05 * (seed % 4)
            tg.start_soon(client.create, FLUX, {"seed": seed, "sandbox_latency": latency})
    stats = sandbox.state.snapshot()
    assert (stats["creates"], stats["max_held"]) == (12, 4)
    assert max(sum(busy) for busy in transport.seen) == 4
    assert transport.seen[0] == (2, 2)  # both pools carried requests at once
    assert transport.busy == (0, 0)


async def test_slots_come_back_after_errors_and_streamed_downloads(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    transport = ShardedTransport(2, pool_size=1)
    files = ShardedTransport(2, pool_size=1)
    fast = RetryPolicy(attempts=2, backoff_base=0.001, backoff_cap=0.001)
    async with Client(
        sandbox.base_url, TOKEN, transport=transport, file_transport=files, retry=fast
    ) as client:
        done = await client.create(FLUX, {"prompt": "a fox"}, wait=5)
        for index in range(5):
            await client.download(done.output[0], tmp_path / f"{index}.png")
        sandbox.configure(reset_rate=1.0, reset_methods=["GET"])
        for _ in range(3):
            with pytest.raises(ApiConnectionError):
                await client.get(done.id)
        assert transport.busy == (0, 0)
        assert files.busy == (0, 0)
        sandbox.configure(reset_rate=0.0)
        assert (await client.get(done.id)).id == done.id


async def test_a_cancelled_request_gives_its_slot_back(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(latency=5)
    transport = ShardedTransport(1)
    async with client_on(sandbox, transport) as client:
        with anyio.move_on_after(0.2):
            await client.create(FLUX, {"prompt": "held"}, wait=30)
        assert transport.busy == (0,)
        done = await client.create(FLUX, {"prompt": "next"}, wait=0)
    assert done.status == "starting"


async def test_the_default_client_pools_connections_in_shards(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(response_delay=0.05)
    async with client_on(sandbox, None) as client:
        created = await client.create(FLUX, {"prompt": "a fox"}, wait=0)
        async with anyio.create_task_group() as tg:
            for _ in range(30):
                tg.start_soon(client.get, created.id)
    assert client.stats.gets == 30
    assert client.stats.retries == 0


async def test_a_proxy_named_by_the_environment_is_honoured(
    make_sandbox: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    # httpx only reads proxy variables on its own transport, so the client must keep it then.
    sandbox = make_sandbox()
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens on discard
    async with client_on(sandbox, None) as client:
        with pytest.raises(ApiConnectionError) as caught:
            await client.get("abc")
    assert str(caught.value).startswith(f"GET {sandbox.base_url}/v1/predictions/abc: no answer")
    assert sandbox.state.snapshot()["requests"] == {}


def test_a_pool_needs_a_connection() -> None:
    with pytest.raises(ValueError, match=r"^max_connections must be at least 1, got 0$"):
        ShardedTransport(0)


def test_connections_are_split_into_pools_of_about_the_pool_size() -> None:
    assert ShardedTransport(100).busy == (0,) * 13
    assert ShardedTransport(8).busy == (0,)
    assert ShardedTransport(9, pool_size=4).busy == (0, 0, 0)
