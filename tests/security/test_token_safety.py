"""The API token stays in the Authorization header of requests to the API's own origin.

`TOKEN` is distinctive so a leak cannot hide, and `errors_never_show_token` (used by every client
test module) records every batchrun error built during a test and fails the test if the token is
in the str(), repr() or any attribute of one of them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from leaks import TOKEN

from batchrun.api.client import Client
from batchrun.api.ratelimit import RateLimiter
from batchrun.api.retry import RetryPolicy
from batchrun.errors import (
    ApiConnectionError,
    AuthenticationError,
    BatchrunError,
    DownloadError,
    InvalidRequestError,
    OutcomeUnknownError,
    ServerError,
)
from batchrun.sandbox import Sandbox
from batchrun.spec.target import Target

FLUX = Target("model", "acme", "flux")
FAST = RetryPolicy(attempts=3, backoff_base=0.001, backoff_cap=0.002, rate_limit_budget=0.05)


pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]


def client_for(
    handler: Callable[[httpx.Request], httpx.Response],
    files: Callable[[httpx.Request], httpx.Response] | None = None,
    **options: Any,
) -> Client:
    options.setdefault("retry", FAST)
    return Client(
        "https://api.test",
        TOKEN,
        transport=httpx.MockTransport(handler),
        file_transport=httpx.MockTransport(files or handler),
        create_limiter=RateLimiter(10_000),
        request_limiter=RateLimiter(10_000),
        **options,
    )


async def test_the_recorder_sees_errors_and_would_catch_a_leak(
    errors_never_show_token: list[BatchrunError],
) -> None:
    # Proof that the guard works: it records what is built, and the check would find the token.
    error = ServerError(f"boom {TOKEN}")
    assert errors_never_show_token == [error]
    errors_never_show_token.clear()


@pytest.mark.parametrize("status", [401, 403, 404, 422, 500, 502])
async def test_a_server_that_echoes_the_token_back_does_not_leak_it(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"title": "Nope", "detail": f"token {TOKEN} was seen", "status": status}
        return httpx.Response(status, json=body)

    async with client_for(handler) as client:
        with pytest.raises(BatchrunError) as caught:
            await client.get("abc")
    assert "token *** was seen" in str(caught.value)


async def test_a_long_echo_cut_to_one_line_leaves_no_piece_of_the_token() -> None:
    detail = "x" * 290 + TOKEN + "y" * 100

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=detail)

    async with client_for(handler) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("abc")
    message = str(caught.value)
    assert TOKEN[:6] not in message
    assert message.endswith("x" * 290 + "***" + "y" * 6 + "…")


async def test_an_html_page_that_echoes_the_token_does_not_leak_it() -> None:
    page = f"<html><head><title>Bad Gateway for {TOKEN}</title></head></html>"

    async with client_for(lambda request: httpx.Response(502, html=page)) as client:
        with pytest.raises(OutcomeUnknownError) as caught:
            await client.create(FLUX, {"prompt": "x"})
    assert str(caught.value) == (
        "POST https://api.test/v1/models/acme/flux/predictions: 502 Bad Gateway for ***;"
        " the prediction may have been created anyway"
    )


async def test_httpx_exception_text_with_the_token_is_redacted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect with Authorization: Bearer {TOKEN}")

    async with client_for(handler) as client:
        with pytest.raises(ApiConnectionError) as caught:
            await client.get("abc")
    assert str(caught.value) == (
        "GET https://api.test/v1/predictions/abc: no answer"
        " (cannot connect with Authorization: Bearer ***)"
    )


async def test_authentication_errors_name_the_variable_not_the_token() -> None:
    body = {"title": "Unauthenticated", "detail": "You did not pass a valid token", "status": 401}

    async with client_for(lambda r: httpx.Response(401, json=body), token_env="ACME_KEY") as c:
        with pytest.raises(AuthenticationError) as caught:
            await c.get("abc")
    assert str(caught.value) == (
        "GET https://api.test/v1/predictions/abc: 401 Unauthenticated: You did not pass a valid"
        " token; check the API token in $ACME_KEY"
    )


async def test_a_token_that_cannot_be_a_header_is_refused_without_showing_it() -> None:
    with pytest.raises(BatchrunError) as caught:
        Client("https://api.test", TOKEN + "\n" + TOKEN)
    assert str(caught.value) == (
        "the API token in $REPLICATE_API_TOKEN has characters a header cannot carry"
    )


async def test_an_input_that_is_not_json_is_refused_before_sending() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(500)

    async with client_for(handler) as client:
        with pytest.raises(InvalidRequestError) as nan:
            await client.create(FLUX, {"seed": float("nan")})
        with pytest.raises(InvalidRequestError) as thing:
            await client.create(FLUX, {"image": object()})
    url = "https://api.test/v1/models/acme/flux/predictions"
    assert str(nan.value) == f"POST {url}: the input is not valid JSON: it holds NaN or infinity"
    assert str(thing.value) == (
        f"POST {url}: the input is not valid JSON: Object of type object is not JSON serializable"
    )
    assert sent == []


async def test_download_errors_never_carry_the_token(tmp_path: Path) -> None:
    def files(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, text=f"upstream said {TOKEN}")

    async with client_for(lambda r: httpx.Response(200), files) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://files.test/a.png", tmp_path / "a.png")
    assert str(caught.value) == "cannot download https://files.test/a.png: 500 upstream said ***"


# Against the sandbox, over real sockets ---------------------------------------------------


def sandbox_client(sandbox: Sandbox, **options: Any) -> Client:
    return Client(
        sandbox.base_url,
        TOKEN,
        create_limiter=RateLimiter(1000),
        request_limiter=RateLimiter(1000),
        retry=FAST,
        **options,
    )


async def test_output_files_on_a_second_origin_never_get_the_token(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(second_origin=True, tokens=[TOKEN])
    async with sandbox_client(sandbox) as client:
        done = await client.create(FLUX, {"prompt": "a fox", "num_outputs": 2}, wait=10)
        assert done.status == "succeeded"
        for index, url in enumerate(done.output):
            assert url.startswith(sandbox.files_base_url + "/delivery/")
            await client.download(url, tmp_path / f"{index}.png")
    stats = sandbox.state.snapshot()
    assert stats["delivery_requests"] == stats["downloads"] == 2
    assert stats["delivery_authorized"] == 0


async def test_output_files_on_the_api_origin_get_the_token(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    # The rule is "the API's own origin", not "never for files": a proxy may serve both.
    sandbox = make_sandbox(tokens=[TOKEN])
    async with sandbox_client(sandbox) as client:
        done = await client.create(FLUX, {"prompt": "a fox"}, wait=10)
        assert done.output[0].startswith(sandbox.base_url + "/delivery/")
        await client.download(done.output[0], tmp_path / "a.png")
    stats = sandbox.state.snapshot()
    assert (stats["delivery_requests"], stats["delivery_authorized"]) == (1, 1)


class RedirectingTransport(httpx.AsyncBaseTransport):
    """Real sockets, except `/redirect?to=URL` on the API origin answers 302 to URL.

    (The sandbox has no redirecting route, so the API origin's redirect is played here; the
    hop it points to is the sandbox's real second origin, which counts Authorization headers.)
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.redirects: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/redirect":
            self.redirects.append(request)
            return httpx.Response(302, headers={"Location": request.url.params["to"]})
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_a_redirect_from_the_api_origin_does_not_carry_the_token_over(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(second_origin=True, tokens=[TOKEN])
    files = RedirectingTransport()
    async with sandbox_client(sandbox, file_transport=files) as client:
        done = await client.create(FLUX, {"prompt": "a fox"}, wait=10)
        hop = httpx.URL(sandbox.base_url + "/redirect", params={"to": done.output[0]})
        got = await client.download(str(hop), tmp_path / "a.png")
    assert got.bytes > 0
    assert files.redirects[0].headers["authorization"] == f"Bearer {TOKEN}"
    stats = sandbox.state.snapshot()
    assert (stats["delivery_requests"], stats["delivery_authorized"]) == (1, 0)
