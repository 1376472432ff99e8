"""Http11Transport over real sockets: the connection cap, keep-alive and its limits, every slot
coming back however a request ends, TLS, and httpx's own exceptions for failures."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx
import pytest
from leaks import TOKEN

from batchrun.api.client import Client
from batchrun.api.http11 import Http11Transport
from batchrun.api.pool import async_client
from batchrun.api.ratelimit import RateLimiter
from batchrun.api.retry import RetryPolicy
from batchrun.errors import ApiConnectionError
from batchrun.sandbox import Sandbox
from batchrun.spec.target import Target

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]

FLUX = Target("model", "acme", "flux")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def client_on(sandbox: Sandbox, transport: httpx.AsyncBaseTransport | None) -> Client:
    return Client(
        sandbox.base_url,
        TOKEN,
        transport=transport,
        create_limiter=RateLimiter(1000),
        request_limiter=RateLimiter(1000),
        retry=RetryPolicy(attempts=2, backoff_base=0.001, backoff_cap=0.001),
    )


async def test_no_more_requests_are_in_flight_than_connections(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # Each create is held by Prefer: wait until its prediction ends, so each holds a connection.
    sandbox = make_sandbox()
    transport = Http11Transport(4)
    async with client_on(sandbox, transport) as client, anyio.create_task_group() as tg:
        for seed in range(12):
            latency = 0.1 + 0.05 * (seed % 4)
            tg.start_soon(client.create, FLUX, {"seed": seed, "sandbox_latency": latency})
    stats = sandbox.state.snapshot()
    assert (stats["creates"], stats["max_held"]) == (12, 4)
    assert transport.connections_opened == 4  # the other eight reused them


async def test_keep_alive_reuses_one_connection_for_sequential_requests(sandbox: Sandbox) -> None:
    transport = Http11Transport(8)
    async with httpx.AsyncClient(transport=transport, headers=AUTH) as http:
        for _ in range(20):
            answer = await http.get(f"{sandbox.base_url}/v1/models/acme/flux")
            assert answer.status_code == 200
            assert answer.json()["name"] == "flux"
    assert transport.connections_opened == 1


async def test_an_idle_connection_the_server_closed_is_not_reused() -> None:
    # A server that hangs up after each answer without saying so, as one does when its
    # keep-alive timeout strikes between two requests.
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await stream.send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    transport = Http11Transport(2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        async with httpx.AsyncClient(transport=transport) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "ok"
            (idle,) = next(iter(transport._idle.values()))
            with anyio.fail_after(5):
                # Wait for the hang-up to reach this socket: its state is what is under test.
                while not idle.closed_by_server():  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "ok"
        tg.cancel_scope.cancel()
    assert transport.connections_opened == 2


async def test_connections_idle_past_the_expiry_are_closed_not_reused(sandbox: Sandbox) -> None:
    transport = Http11Transport(2, keepalive_expiry=0.0)
    async with httpx.AsyncClient(transport=transport, headers=AUTH) as http:
        for _ in range(3):
            assert (await http.get(f"{sandbox.base_url}/v1/models/acme/flux")).status_code == 200
    assert transport.connections_opened == 3


async def test_slots_come_back_after_errors_streamed_downloads_and_cancellation(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox()
    transport, files = Http11Transport(2), Http11Transport(2)
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
        sandbox.configure(reset_rate=0.0, latency=5)
        with anyio.move_on_after(0.2):
            await client.create(FLUX, {"prompt": "held"}, wait=30)
        # Both slots are free again: two requests at once still go through.
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.get, done.id)
            tg.start_soon(client.get, done.id)
    assert files.connections_opened == 1


async def test_a_body_left_unread_closes_its_connection(sandbox: Sandbox) -> None:
    transport = Http11Transport(1)
    async with httpx.AsyncClient(transport=transport, headers=AUTH) as http:
        async with http.stream("GET", f"{sandbox.base_url}/v1/models/acme/flux") as answer:
            assert answer.status_code == 200
        assert transport._idle_count == 0  # mid-message: never reused
        assert (await http.get(f"{sandbox.base_url}/v1/models/acme/flux")).status_code == 200
    assert transport.connections_opened == 2


async def test_failures_are_httpx_exceptions() -> None:
    transport = Http11Transport(1)
    async with httpx.AsyncClient(transport=transport) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("http://127.0.0.1:9/")  # the discard port: nothing listens


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await anyio.sleep(5)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        async with httpx.AsyncClient(transport=Http11Transport(1), timeout=0.2) as http:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"http://127.0.0.1:{port}/")
        tg.cancel_scope.cancel()


async def test_chunked_answers_are_read_whole() -> None:
    async def serve(stream: anyio.abc.SocketStream) -> None:
        await stream.receive()
        await stream.send(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        )

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        async with httpx.AsyncClient(transport=Http11Transport(1)) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "hello world"
        tg.cancel_scope.cancel()


async def test_tls_with_a_trusted_certificate(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a TLS certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    await anyio.run_process(
        ["openssl", "req", "-x509", "-nodes", "-days", "1", "-newkey", "rsa:2048",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    sandbox = make_sandbox(files_tls=(cert, key))
    assert sandbox.files_base_url.startswith("https://")
    transport = Http11Transport(2)
    async with client_on(sandbox, transport) as client:
        done = await client.create(FLUX, {"prompt": "tls"}, wait=5)
        assert done.output[0].startswith("https://")
        got = await client.download(done.output[0], tmp_path / "a.png")
    assert got.bytes > 0
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


async def test_the_default_client_keeps_no_cookies(sandbox: Sandbox) -> None:
    http = async_client(headers=AUTH, timeout=httpx.Timeout(5), max_connections=2)
    async with http:
        response = await http.get(f"{sandbox.base_url}/v1/models/acme/flux")
        response.cookies  # noqa: B018  (httpx reads them lazily; nothing is kept)
        http.cookies.set("a", "b")
    assert isinstance(http._transport, Http11Transport)


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


def test_a_transport_needs_a_connection() -> None:
    with pytest.raises(ValueError, match=r"^max_connections must be at least 1, got 0$"):
        Http11Transport(0)
