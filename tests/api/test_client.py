"""Client over httpx.MockTransport: URLs, headers, timeouts, error translation, every endpoint.

Retry timing (429 waits, backoff) is in test_client_retry.py, on virtual time; the OpenAPI
contract in test_client_contract.py; real sockets and injected faults in test_client_faults.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from leaks import TOKEN
from scripted import (
    BARE,
    DEPLOYMENT,
    FLUX,
    LORA,
    VERSION,
    Script,
    make_client,
    ok,
    page,
    prediction,
    problem,
)

from batchrun import __version__
from batchrun.api.client import Client
from batchrun.api.endpoint import _normalized_by_httpx, normalize_base_url, resolve_endpoint
from batchrun.api.objects import Model, Prediction, UploadedFile
from batchrun.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    ServerError,
    StorageError,
    UsageError,
)
from batchrun.spec.target import Target

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]


NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>"
)


# Base URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://h", "https://h"),
        ("https://h/", "https://h"),
        ("https://h/v1", "https://h"),
        ("https://h/v1/", "https://h"),
        ("https://h/replicate", "https://h/replicate"),
        ("https://h/replicate/v1/", "https://h/replicate"),
        ("  http://127.0.0.1:8765/v1 ", "http://127.0.0.1:8765"),
        ("HTTPS://API.Replicate.com", "https://api.replicate.com"),
    ],
)
def test_base_urls_are_normalized(given: str, expected: str) -> None:
    assert normalize_base_url(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "https://h/v1/v1",
        "http://127.0.0.1:80/v1",
        "https://h:443/x/",
        "https://h:65535/",
        "https://h:99999/x",
        "https://h/a.b/c~d_e-f//",
        "https://h//v1",
        "https://h/..a/./b",
        "https://h:0/",
        "https://ex.ample.com/replicate/v1",
        "https://h/V1",
        "https://ÄPI.example/v1",
        "https://h/a%20b",
    ],
)
def test_base_urls_normalized_without_httpx_agree_with_httpx(given: str) -> None:
    # The common forms are normalized by a pattern, so that offline commands need not import
    # httpx; the pattern must never disagree with httpx's parser, the rule for the rest.
    assert normalize_base_url(given) == _normalized_by_httpx(given)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (
            "ftp://h/replicate",
            "the base URL must be an http(s) URL such as https://api.replicate.com,"
            " got 'ftp://h/replicate'",
        ),
        (
            "api.replicate.com",
            "the base URL must be an http(s) URL such as https://api.replicate.com,"
            " got 'api.replicate.com'",
        ),
        ("", "the base URL must be an http(s) URL such as https://api.replicate.com, got ''"),
        ("https://h/?x=1", "the base URL must not have a query or fragment, got 'https://h/?x=1'"),
    ],
)
def test_base_urls_that_cannot_work_are_usage_errors(given: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        normalize_base_url(given)
    assert str(caught.value) == message


def test_the_base_url_comes_from_the_flag_then_the_environment_then_the_spec() -> None:
    # Issue 13: $REPLICATE_BASE_URL beats the spec's base_url, as the schema always said.
    def url(flag: str | None, spec: str | None, env: dict[str, str]) -> str:
        return resolve_endpoint(
            base_url=flag, spec_base_url=spec, spec_token_env=None, env=env
        ).base_url

    env = {"REPLICATE_BASE_URL": "https://env/v1"}
    assert url("https://cli/v1", "https://spec", env) == "https://cli"
    assert url(None, "https://spec/replicate/v1", env) == "https://env"
    assert url(None, "https://spec/replicate/v1", {}) == "https://spec/replicate"
    assert url(None, None, env) == "https://env"
    assert url("", " ", {}) == "https://api.replicate.com"
    with pytest.raises(UsageError):
        url("file:///etc", None, {})


@pytest.mark.parametrize(
    ("base", "api"),
    [
        ("https://h", "https://h/v1"),
        ("https://h/", "https://h/v1"),
        ("https://h/v1", "https://h/v1"),
        ("https://h/replicate", "https://h/replicate/v1"),
        ("https://h/replicate/v1/", "https://h/replicate/v1"),
    ],
)
async def test_every_base_url_form_reaches_the_same_endpoints(base: str, api: str) -> None:
    script = Script(ok(status=201))
    async with make_client(script, base) as client:
        await client.create(FLUX, {"prompt": "a fox"})
        await client.create(LORA, {"prompt": "a fox"})
        await client.create(DEPLOYMENT, {"prompt": "a fox"})
        await client.get("p1")
        await client.cancel("p1")
        script.answers = [httpx.Response(200, json={"owner": "a", "name": "b"})]
        await client.get_model("black-forest-labs", "flux-schnell")
    assert script.urls == [
        f"{api}/models/black-forest-labs/flux-schnell/predictions",
        f"{api}/predictions",
        f"{api}/deployments/acme/my-flux/predictions",
        f"{api}/predictions/p1",
        f"{api}/predictions/p1/cancel",
        f"{api}/models/black-forest-labs/flux-schnell",
    ]


# Requests ---------------------------------------------------------------------------------


async def test_create_sends_the_documented_bodies_for_each_kind_of_target() -> None:
    script = Script(ok(status=201))
    async with make_client(script) as client:
        for target in (FLUX, LORA, BARE, DEPLOYMENT):
            await client.create(target, {"prompt": "a fox", "seed": 3})
    assert [script.body(i) for i in range(4)] == [
        {"input": {"prompt": "a fox", "seed": 3}},
        {"version": VERSION, "input": {"prompt": "a fox", "seed": 3}},
        {"version": VERSION, "input": {"prompt": "a fox", "seed": 3}},
        {"input": {"prompt": "a fox", "seed": 3}},
    ]
    assert all(r.headers["content-type"] == "application/json" for r in script.requests)


async def test_every_request_carries_the_token_and_the_user_agent() -> None:
    script = Script(ok(status=201))
    async with make_client(script) as client:
        await client.create(FLUX, {})
        await client.get("p1")
    for request in script.requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["user-agent"] == f"batchrun/{__version__}"


async def test_any_token_format_is_sent_as_a_bearer_token() -> None:
    script = Script(ok())
    async with Client(
        "https://h/replicate", "hk-proxy-key", transport=httpx.MockTransport(script)
    ) as c:
        await c.get("p1")
    assert script.requests[0].headers["authorization"] == "Bearer hk-proxy-key"


@pytest.mark.parametrize(
    ("constructor", "call", "header"),
    [
        (60, None, "wait=60"),
        (60, 5, "wait=5"),
        (10, 60, "wait=60"),
        (60, 0, None),
        (None, None, None),
        (0, 7, "wait=7"),
    ],
)
async def test_prefer_wait_comes_from_the_call_or_the_constructor(
    constructor: int | None, call: int | None, header: str | None
) -> None:
    script = Script(ok(status=201))
    async with make_client(script, wait=constructor) as client:
        await client.create(FLUX, {}, wait=call)
    assert script.requests[0].headers.get("prefer") == header


async def test_cancel_after_is_sent_when_given() -> None:
    script = Script(ok(status=201))
    async with make_client(script) as client:
        await client.create(FLUX, {}, cancel_after="1h30m")
        await client.create(FLUX, {})
    assert script.requests[0].headers["cancel-after"] == "1h30m"
    assert "cancel-after" not in script.requests[1].headers


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"wait": 61}, "Prefer: wait must be between 1 and 60 seconds, got 61"),
        ({"wait": -1}, "Prefer: wait must be between 1 and 60 seconds, got -1"),
        ({"cancel_after": "soon"}, "Cancel-After must look like 30s, 5m or 1h30m, got 'soon'"),
        ({"cancel_after": ""}, "Cancel-After must look like 30s, 5m or 1h30m, got ''"),
    ],
)
async def test_create_options_that_cannot_work_are_refused_before_sending(
    options: dict[str, Any], message: str
) -> None:
    script = Script(ok(status=201))
    async with make_client(script) as client:
        with pytest.raises(UsageError) as caught:
            await client.create(FLUX, {}, **options)
    assert str(caught.value) == message
    assert script.requests == []


async def test_timeouts_leave_room_for_prefer_wait_and_never_time_out_on_the_pool() -> None:
    script = Script(ok(status=201))
    async with make_client(script) as client:
        await client.create(FLUX, {}, wait=60)
        await client.create(FLUX, {}, wait=5)
        await client.get("p1")
    create60, create5, get = (r.extensions["timeout"] for r in script.requests)
    assert create60 == {"connect": 10.0, "read": 90.0, "write": 30.0, "pool": None}
    assert create5["read"] == 35.0
    assert get == {"connect": 10.0, "read": 30.0, "write": 30.0, "pool": None}


async def test_get_polls_the_base_url_never_the_urls_get_the_answer_names() -> None:
    script = Script(ok(prediction("p1"), status=201))
    async with make_client(script, "https://proxy.test/replicate") as client:
        created = await client.create(FLUX, {})
        assert created.urls["get"] == "https://api.replicate.com/v1/predictions/p1"
        await client.get(created.id)
    assert script.urls[1] == "https://proxy.test/replicate/v1/predictions/p1"


async def test_ids_and_names_are_quoted_into_one_path_segment() -> None:
    script = Script(ok())
    async with make_client(script) as client:
        await client.get("../../models/x?y=1")
    assert script.requests[0].url.raw_path == b"/v1/predictions/..%2F..%2Fmodels%2Fx%3Fy%3D1"


async def test_an_empty_id_is_refused() -> None:
    async with make_client(Script(ok())) as client:
        with pytest.raises(UsageError) as caught:
            await client.get("")
    assert str(caught.value) == "an empty name or id cannot be part of an API path"


# Answers ----------------------------------------------------------------------------------


async def test_a_created_prediction_is_parsed() -> None:
    answer = prediction("abc", "succeeded", output=["https://replicate.delivery/x/out-0.webp"])
    async with make_client(Script(ok(answer, status=201))) as client:
        created = await client.create(FLUX, {"prompt": "a fox"})
    assert isinstance(created, Prediction)
    assert (created.id, created.status, created.terminal) == ("abc", "succeeded", True)
    assert created.output == ["https://replicate.delivery/x/out-0.webp"]


async def test_a_202_is_a_created_prediction_too() -> None:
    async with make_client(Script(ok(prediction("abc"), status=202))) as client:
        assert (await client.create(FLUX, {})).id == "abc"


async def test_422_names_the_invalid_field() -> None:
    answer = problem(
        422,
        "Input validation failed",
        "- input.num_outputs: Must be less than or equal to 4\n",
        invalid_fields=[
            {
                "type": "less_than_equal",
                "field": "input.num_outputs",
                "description": "Must be less than or equal to 4",
            }
        ],
    )
    script = Script(answer)
    async with make_client(script, "https://api.replicate.com") as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.create(Target("model", "a", "b"), {"num_outputs": 9})
    error = caught.value
    assert str(error) == (
        "POST https://api.replicate.com/v1/models/a/b/predictions: 422 Input validation failed:"
        " input.num_outputs: Must be less than or equal to 4"
    )
    assert error.invalid_fields == ("input.num_outputs",)
    assert (error.method, error.status) == ("POST", 422)
    assert len(script.requests) == 1


async def test_422_without_invalid_fields_shows_the_bulleted_detail_on_one_line() -> None:
    detail = "- input.prompt: Required\n- input.seed: Must be an integer\n"
    async with make_client(Script(problem(422, "Input validation failed", detail))) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.create(FLUX, {})
    assert str(caught.value) == (
        "POST https://api.test/v1/models/black-forest-labs/flux-schnell/predictions: 422 Input"
        " validation failed: input.prompt: Required; input.seed: Must be an integer"
    )
    assert caught.value.invalid_fields == ()


async def test_400_is_an_invalid_request() -> None:
    async with make_client(Script(problem(400, "Bad request", "not JSON"))) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.create(FLUX, {})
    assert str(caught.value).endswith(": 400 Bad request: not JSON")


@pytest.mark.parametrize("status", [401, 403])
async def test_401_and_403_are_authentication_errors_and_are_not_retried(status: int) -> None:
    script = Script(problem(status, "Unauthenticated", "You did not pass a valid token"))
    async with make_client(script) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get("p1")
    assert str(caught.value) == (
        f"GET https://api.test/v1/predictions/p1: {status} Unauthenticated: You did not pass a"
        " valid token; check the API token in $REPLICATE_API_TOKEN"
    )
    assert len(script.requests) == 1


async def test_404_is_not_found() -> None:
    script = Script(httpx.Response(404, json={"detail": "Not found.", "status": 404}))
    async with make_client(script) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get("nope")
    assert str(caught.value) == "GET https://api.test/v1/predictions/nope: 404 Not found."
    assert len(script.requests) == 1


async def test_a_proxy_html_502_is_readable() -> None:
    script = Script(httpx.Response(502, html=NGINX_502))
    async with make_client(script) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    assert str(caught.value) == "GET https://api.test/v1/predictions/p1: 502 Bad Gateway"
    assert caught.value.status == 502


async def test_a_plain_text_error_shows_its_first_line_truncated() -> None:
    text = (
        "\n\n  upstream connect error or disconnect/reset before headers. " + "x" * 400 + "\nmore"
    )
    async with make_client(Script(httpx.Response(503, text=text))) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    message = str(caught.value)
    assert message.startswith(
        "GET https://api.test/v1/predictions/p1: 503 upstream connect error or disconnect/reset"
        " before headers. xxx"
    )
    assert message.endswith("x…")
    assert len(message) < 400


async def test_an_empty_error_body_falls_back_to_the_reason_phrase() -> None:
    async with make_client(Script(httpx.Response(504))) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    assert str(caught.value) == "GET https://api.test/v1/predictions/p1: 504 Gateway Timeout"


async def test_a_non_json_200_is_a_server_error() -> None:
    script = Script(httpx.Response(200, html="<html>maintenance</html>"))
    async with make_client(script) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    assert str(caught.value) == (
        "GET https://api.test/v1/predictions/p1: 200 response is not what the API promised:"
        " expected JSON, got 24 bytes of text/html; charset=utf-8"
    )


async def test_a_200_prediction_without_an_id_is_a_server_error() -> None:
    async with make_client(Script(httpx.Response(200, json={"status": "starting"}))) as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    assert str(caught.value) == (
        "GET https://api.test/v1/predictions/p1: 200 response is not what the API promised:"
        " the prediction in the response has no id"
    )


async def test_a_redirect_from_the_api_is_an_error_that_names_where_it_points() -> None:
    script = Script(httpx.Response(301, headers={"Location": "https://api.test/v1/predictions/p1"}))
    async with make_client(script, "http://api.test") as client:
        with pytest.raises(ServerError) as caught:
            await client.get("p1")
    assert str(caught.value) == (
        "GET http://api.test/v1/predictions/p1: 301 unexpected redirect to"
        " https://api.test/v1/predictions/p1"
    )


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout(""),
        httpx.ReadError("reset"),
        httpx.WriteError("broken pipe"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ProxyError("proxy"),
        httpx.UnsupportedProtocol("gopher"),
        httpx.DecodingError("bad gzip"),
        httpx.TooManyRedirects("loop"),
    ],
)
async def test_no_httpx_exception_escapes(exc: Exception) -> None:
    script = Script(exc)
    async with make_client(script) as client:
        for call in (
            lambda: client.get("p1"),
            lambda: client.cancel("p1"),
            lambda: client.create(FLUX, {}),
            lambda: client.get_model("a", "b"),
            lambda: client.upload(b"x", filename="a.txt", content_type="text/plain"),
        ):
            with pytest.raises(ApiError) as caught:
                await call()
            assert isinstance(caught.value, ApiConnectionError | OutcomeUnknownError)
            assert caught.value.status is None


async def test_a_timeout_says_it_timed_out() -> None:
    async with make_client(Script(httpx.ReadTimeout(""))) as client:
        with pytest.raises(ApiConnectionError) as caught:
            await client.get("p1")
    assert str(caught.value) == "GET https://api.test/v1/predictions/p1: timed out (ReadTimeout)"


# The other endpoints ----------------------------------------------------------------------


async def test_cancel_posts_to_the_cancel_endpoint() -> None:
    script = Script(ok(prediction("p1", "canceled")))
    async with make_client(script) as client:
        canceled = await client.cancel("p1")
    assert canceled.status == "canceled"
    assert script.requests[0].method == "POST"
    assert script.urls == ["https://api.test/v1/predictions/p1/cancel"]


async def test_get_model_returns_its_latest_version() -> None:
    body = {
        "owner": "acme",
        "name": "flux",
        "latest_version": {"id": VERSION},
        "is_official": False,
    }
    script = Script(httpx.Response(200, json=body))
    async with make_client(script) as client:
        model = await client.get_model("acme", "flux")
    assert model == Model("acme", "flux", VERSION, False, None)


async def test_upload_sends_multipart_content_and_returns_the_file_url() -> None:
    answer = {
        "id": "f1",
        "content_type": "image/png",
        "size": 4,
        "checksums": {"sha256": "ab"},
        "metadata": {},
        "created_at": "2025-01-01T00:00:00Z",
        "expires_at": "2025-01-02T00:00:00Z",
        "urls": {"get": "https://api.test/v1/files/f1"},
    }
    script = Script(httpx.Response(201, json=answer))
    async with make_client(script) as client:
        uploaded = await client.upload(b"\x89PNG", filename="cat.png", content_type="image/png")
    assert uploaded == UploadedFile(
        "f1", "https://api.test/v1/files/f1", 4, "ab", "image/png", "2025-01-02T00:00:00Z"
    )
    request = script.requests[0]
    assert (request.method, str(request.url)) == ("POST", "https://api.test/v1/files")
    kind = request.headers["content-type"]
    assert kind.startswith("multipart/form-data; boundary=")
    body = request.content
    assert b'Content-Disposition: form-data; name="content"; filename="cat.png"' in body
    assert b"Content-Type: image/png\r\n\r\n\x89PNG\r\n" in body
    assert b'name="filename"\r\n\r\ncat.png\r\n' in body


async def test_upload_reads_a_path(tmp_path: Any) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(b"hello")
    answer = {"id": "f1", "urls": {"get": "https://api.test/v1/files/f1"}, "size": 5}
    script = Script(httpx.Response(201, json=answer))
    async with make_client(script) as client:
        await client.upload(path, filename="note.txt", content_type="text/plain")
    assert b"\r\n\r\nhello\r\n" in script.requests[0].content


async def test_upload_of_a_missing_path_is_a_storage_error(tmp_path: Any) -> None:
    async with make_client(Script(ok())) as client:
        with pytest.raises(StorageError) as caught:
            await client.upload(
                tmp_path / "gone.png", filename="gone.png", content_type="image/png"
            )
    assert str(caught.value) == f"cannot read {tmp_path / 'gone.png'}: No such file or directory"


# Listing ----------------------------------------------------------------------------------


async def test_list_follows_next_links_on_the_api_origin() -> None:
    script = Script(
        page(["a", "b"], "https://api.test/v1/predictions?cursor=c2"),
        page(["c"], None),
    )
    async with make_client(script) as client:
        found = [p.id async for p in client.list_predictions(created_after="2025-01-01T00:00:00Z")]
    assert found == ["a", "b", "c"]
    assert script.urls == [
        "https://api.test/v1/predictions?created_after=2025-01-01T00%3A00%3A00Z",
        "https://api.test/v1/predictions?cursor=c2",
    ]


async def test_list_rebuilds_a_foreign_next_link_from_its_cursor() -> None:
    # The proxy's `next` points at api.replicate.com, which has never seen this proxy's key.
    script = Script(
        page(["a"], "https://api.replicate.com/v1/predictions?cursor=c2&created_after=x"),
        page(["b"], "/v1/predictions?cursor=c3"),
        page(["c"], None),
    )
    async with make_client(script, "https://proxy.test/replicate") as client:
        found = [p.id async for p in client.list_predictions()]
    assert found == ["a", "b", "c"]
    assert script.urls == [
        "https://proxy.test/replicate/v1/predictions",
        "https://proxy.test/replicate/v1/predictions?cursor=c2&created_after=x",
        "https://proxy.test/replicate/v1/predictions?cursor=c3",
    ]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in script.requests)


async def test_list_stops_when_next_repeats_itself() -> None:
    script = Script(page(["a"], "https://api.test/v1/predictions?cursor=same"))
    async with make_client(script) as client:
        found = [p.id async for p in client.list_predictions()]
    assert found == ["a", "a"]
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (httpx.Response(404, json={"detail": "Not found.", "status": 404}), "404 Not found"),
        (httpx.Response(405, text="Method Not Allowed"), "405 Method Not Allowed"),
        (httpx.Response(501, html="<title>501 Not Implemented</title>"), "501 Not Implemented"),
    ],
)
async def test_a_proxy_without_the_list_endpoint_is_not_found(
    answer: httpx.Response, said: str
) -> None:
    script = Script(answer)
    async with make_client(script) as client:
        with pytest.raises(NotFoundError) as caught:
            [p async for p in client.list_predictions()]
    assert str(caught.value) == (
        f"GET https://api.test/v1/predictions: {said}; this API has no such endpoint"
    )
    assert len(script.requests) == 1


async def test_a_list_page_without_results_is_a_server_error() -> None:
    async with make_client(Script(httpx.Response(200, json={"next": None}))) as client:
        with pytest.raises(ServerError) as caught:
            [p async for p in client.list_predictions()]
    assert str(caught.value) == (
        "GET https://api.test/v1/predictions: 200 response is not what the API promised:"
        " no `results` list"
    )


# Stats ------------------------------------------------------------------------------------


async def test_stats_count_requests_by_kind() -> None:
    script = Script(ok(status=201))
    async with make_client(script) as client:
        await client.create(FLUX, {})
        await client.get("p1")
        await client.get("p1")
        await client.cancel("p1")
        script.answers = [page(["a"], None)]
        [p async for p in client.list_predictions()]
    stats = client.stats
    assert (stats.creates, stats.gets, stats.cancels, stats.lists) == (1, 2, 1, 1)
    assert (stats.retries, stats.rate_limited, stats.server_errors, stats.network_errors) == (
        0,
        0,
        0,
        0,
    )
