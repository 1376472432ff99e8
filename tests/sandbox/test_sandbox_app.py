"""The app in process, through httpx.ASGITransport: no sockets, same answers."""

from __future__ import annotations

import httpx
import pytest
from openapi import openapi_checked

from batchrun.sandbox import SandboxConfig, create_app

AUTH = {"Authorization": "Bearer r8_in_process"}


def in_process(config: SandboxConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(config)),
        base_url="http://sandbox.test",
        headers=AUTH,
        event_hooks={"response": [_checked]},
    )


async def _checked(response: httpx.Response) -> None:
    await response.aread()
    openapi_checked(response)


@pytest.mark.anyio
async def test_create_wait_and_get_in_process() -> None:
    async with in_process(SandboxConfig(latency=0.05)) as api:
        created = await api.post(
            "/v1/models/acme/painter/predictions",
            json={"input": {"prompt": "a fox"}},
            headers={"Prefer": "wait=5"},
        )
        assert created.status_code == 201
        body = created.json()
        assert body["output"] == [f"http://sandbox.test/delivery/{body['id']}/out-0.png"]
        image = await api.get(body["output"][0])
        assert image.headers["content-type"] == "image/png"
        fetched = await api.get(f"/v1/predictions/{body['id']}")
        assert fetched.json()["status"] == "succeeded"


@pytest.mark.anyio
async def test_the_app_exposes_its_state_and_counts_by_route() -> None:
    app = create_app(SandboxConfig(latency=0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://s", headers=AUTH) as api:
        await api.get("/v1/predictions/abc")
        await api.get("/nowhere")
    assert app.state.snapshot()["requests"] == {
        "GET /v1/predictions/{prediction_id}": 1,
        "GET (no route)": 1,
    }


@pytest.mark.anyio
async def test_unknown_paths_are_problem_json() -> None:
    async with in_process(SandboxConfig()) as api:
        answer = await api.get("/")
    assert answer.status_code == 404
    assert answer.json() == {"title": "Not found", "detail": "Not found.", "status": 404}
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.anyio
async def test_a_wrong_method_is_405_problem_json() -> None:
    async with in_process(SandboxConfig()) as api:
        answer = await api.delete("/_sandbox/stats")
    assert answer.status_code == 405
    assert answer.json() == {
        "title": "Method Not Allowed",
        "detail": "Method Not Allowed",
        "status": 405,
    }
