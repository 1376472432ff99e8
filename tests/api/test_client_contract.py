"""Contract: every request the client sends, and every answer it parses, matches Replicate's
published OpenAPI schema (tests/openapi.py) — once against recorded answers, once against the
sandbox over real sockets with every exchange checked on the way."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from leaks import TOKEN
from openapi import component, document, openapi_checked, validate_request, validate_response
from scripted import prediction

from batchrun.api.client import Client
from batchrun.api.ratelimit import RateLimiter
from batchrun.errors import InvalidRequestError
from batchrun.sandbox import Sandbox
from batchrun.spec.target import Target

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]

VERSION = "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa"
MODEL_ANSWER = {
    "url": "https://replicate.com/acme/flux",
    "owner": "acme",
    "name": "flux",
    "description": None,
    "visibility": "public",
    "github_url": None,
    "paper_url": None,
    "license_url": None,
    "run_count": 1,
    "cover_image_url": None,
    "default_example": None,
    "is_official": False,
    "latest_version": {"id": VERSION},
}
FILE_ANSWER = {
    "id": "f1",
    "content_type": "image/png",
    "size": 4,
    "checksums": {"sha256": "ab" * 32},
    "metadata": {},
    "created_at": "2025-01-01T00:00:00Z",
    "expires_at": "2025-01-02T00:00:00Z",
    "urls": {"get": "https://api.replicate.com/v1/files/f1"},
}


def recorded(request: httpx.Request) -> httpx.Response:
    """Schema-valid answers for every operation the client uses."""
    path, method = request.url.path.removeprefix("/v1"), request.method
    if method == "POST" and path.endswith("/predictions"):
        return httpx.Response(201, json=prediction("p1", "starting"))
    if method == "POST" and path.endswith("/cancel"):
        return httpx.Response(200, json=prediction("p1", "canceled"))
    if method == "GET" and path == "/predictions":
        body = {"results": [prediction("p1", "succeeded")], "next": None, "previous": None}
        return httpx.Response(200, json=body)
    if method == "GET" and path.startswith("/predictions/"):
        return httpx.Response(200, json=prediction("p1", "processing"))
    if method == "GET" and path.startswith("/models/"):
        return httpx.Response(200, json=MODEL_ANSWER)
    if method == "POST" and path == "/files":
        return httpx.Response(201, json=FILE_ANSWER)
    if method == "GET" and path.endswith("/download"):
        return httpx.Response(200, content=b"\x89PNG", headers={"Content-Type": "image/png"})
    raise AssertionError(f"the client used an operation this test does not know: {request}")


def check_exchange(request: httpx.Request, response: httpx.Response) -> None:
    path = request.url.path.removeprefix("/v1")
    kind = request.headers.get("content-type", "")
    body = json.loads(request.content) if kind == "application/json" else None
    validate_request(path, request.method, body, dict(request.headers))
    if response.headers.get("content-type") == "application/json":
        validate_response(path, request.method, response.status_code, response.json())


async def test_every_request_and_answer_matches_the_schema(tmp_path: Path) -> None:
    exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        response = recorded(request)
        exchanges.append((request, response))
        return response

    transport = httpx.MockTransport(handler)
    async with Client(
        "https://api.test",
        TOKEN,
        transport=transport,
        file_transport=transport,
        create_limiter=RateLimiter(1000),
        request_limiter=RateLimiter(1000),
    ) as client:
        await client.create(Target("model", "acme", "flux"), {"prompt": "a"}, cancel_after="5m")
        await client.create(Target("version", "acme", "flux", VERSION), {"prompt": "a"}, wait=5)
        await client.create(Target("version", version=VERSION), {"prompt": "a"}, wait=0)
        await client.create(Target("deployment", "acme", "prod"), {"prompt": "a"}, wait=60)
        await client.get("p1")
        await client.cancel("p1")
        [p async for p in client.list_predictions(created_after="2025-01-01T00:00:00Z")]
        await client.get_model("acme", "flux")
        await client.upload(b"\x89PNG", filename="cat.png", content_type="image/png")
        await client.download(
            "https://api.test/v1/files/f1/download?owner=acme&expiry=1735689600&signature=c2ln",
            tmp_path / "cat.png",
        )
    operations = [f"{r.method} {r.url.path}" for r, _ in exchanges]
    assert operations == [
        "POST /v1/models/acme/flux/predictions",
        "POST /v1/predictions",
        "POST /v1/predictions",
        "POST /v1/deployments/acme/prod/predictions",
        "GET /v1/predictions/p1",
        "POST /v1/predictions/p1/cancel",
        "GET /v1/predictions",
        "GET /v1/models/acme/flux",
        "POST /v1/files",
        "GET /v1/files/f1/download",
    ]
    for request, response in exchanges:
        check_exchange(request, response)


def test_the_headers_the_client_sends_are_the_ones_the_schema_declares() -> None:
    # validate_request checks only the headers an operation declares; make sure ours are.
    parameters = document()["components"]["parameters"]
    assert parameters["parameters_prefer_header"]["name"] == "Prefer"
    assert parameters["parameters_cancel_after_header"]["name"] == "Cancel-After"
    body = {"version": VERSION, "input": {}}
    for wait in range(1, 61):
        validate_request("/predictions", "POST", body, {"Prefer": f"wait={wait}"})


def test_the_upload_is_the_multipart_form_the_schema_declares() -> None:
    # validate_request cannot read multipart; the client's fields are checked by name here.
    operation = document()["paths"]["/files"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["content"]
    assert {"content", "filename", "type"} <= set(form["properties"])


def test_the_list_query_is_a_declared_parameter() -> None:
    names = [p["name"] for p in document()["paths"]["/predictions"]["get"]["parameters"]]
    assert "created_after" in names


def test_the_recorded_answers_are_valid_themselves() -> None:
    # Guards the test above: a fixture that drifted from the schema would prove nothing.
    validate_response("/predictions/{id}", "GET", 200, prediction("p1"))
    validate_response("/models/a/b", "GET", 200, MODEL_ANSWER)
    validate_response("/files", "POST", 201, FILE_ANSWER)
    assert component("schemas_prediction_response")["required"]


# Against the sandbox, over real sockets ---------------------------------------------------


class CheckedTransport(httpx.AsyncBaseTransport):
    """A real HTTP transport that checks every /v1 exchange against the schema."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.checked = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        seen = httpx.Response(
            response.status_code, headers=response.headers, content=content, request=request
        )
        openapi_checked(seen)
        self.checked += request.url.path.startswith("/v1/")
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_against_the_sandbox_every_exchange_matches_the_schema(
    make_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = make_sandbox(latency=0.2)
    transport = CheckedTransport()
    async with Client(sandbox.base_url, TOKEN, transport=transport) as client:
        done = await client.create(Target("model", "acme", "flux"), {"prompt": "a fox"}, wait=5)
        assert done.status == "succeeded"
        pending = await client.create(
            Target("model", "acme", "flux"), {"prompt": "a fox", "seed": 2}, wait=0
        )
        assert pending.status == "starting"
        assert (await client.get(pending.id)).id == pending.id
        await client.cancel(pending.id)
        model = await client.get_model("acme", "flux")
        assert model.latest_version
        await client.create(
            Target("version", "acme", "flux", model.latest_version), {"prompt": "b"}
        )
        await client.create(
            Target("deployment", "acme", "prod"), {"prompt": "c"}, cancel_after="5m"
        )
        listed = [p.id async for p in client.list_predictions(created_after="2020-01-01T00:00:00Z")]
        assert pending.id in listed
        assert done.id in listed
        uploaded = await client.upload(b"\x89PNG", filename="cat.png", content_type="image/png")
        assert uploaded.size == 4
        with pytest.raises(InvalidRequestError) as caught:
            await client.create(Target("model", "acme", "flux"), {"num_outputs": 99})
        assert caught.value.invalid_fields
    assert transport.checked >= 10
