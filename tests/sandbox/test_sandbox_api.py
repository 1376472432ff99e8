"""The sandbox's /v1 API over a real socket; every exchange is checked against the OpenAPI schema
by the `api` fixture."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from openapi import match_path, openapi_checked

from batchrun.sandbox import Sandbox
from batchrun.sandbox.models import derived_version_id

WAIT = {"Prefer": "wait"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ID = re.compile(r"^[a-z2-7]{26}$")


def create(api: httpx.Client, model: str = "acme/painter", **inputs: Any) -> dict[str, Any]:
    """Create by model name and wait for the end."""
    answer = api.post(f"/v1/models/{model}/predictions", json={"input": inputs}, headers=WAIT)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


# Creating ---------------------------------------------------------------------------------


def test_create_without_wait_answers_202_starting(api: httpx.Client, sandbox: Sandbox) -> None:
    answer = api.post(
        "/v1/models/acme/painter/predictions", json={"input": {"prompt": "a red fox"}}
    )
    assert answer.status_code == 202
    body = answer.json()
    assert ID.match(body["id"])
    assert body["status"] == "starting"
    assert body["model"] == "acme/painter"
    assert body["version"] == derived_version_id("acme/painter", 0)
    assert body["input"] == {"prompt": "a red fox"}
    assert body["output"] is None
    assert body["urls"] == {
        "get": f"{sandbox.base_url}/v1/predictions/{body['id']}",
        "cancel": f"{sandbox.base_url}/v1/predictions/{body['id']}/cancel",
        "web": f"{sandbox.base_url}/p/{body['id']}",
    }


def test_create_with_wait_answers_201_with_the_final_output(
    api: httpx.Client, sandbox: Sandbox
) -> None:
    body = create(api, prompt="a red fox", seed=3, num_outputs=2)
    assert body["status"] == "succeeded"
    base = f"{sandbox.base_url}/delivery/{body['id']}"
    assert body["output"] == [f"{base}/out-0.png", f"{base}/out-1.png"]
    assert body["metrics"]["predict_time"] == pytest.approx(0.75 * 0.05, abs=1e-6)
    assert body["metrics"]["image_count"] == 2
    assert body["error"] is None
    assert body["started_at"] < body["completed_at"]


def test_wait_that_runs_out_answers_202_starting(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/models/acme/painter/predictions",
        json={"input": {"sandbox_latency": 30}},
        headers={"Prefer": "wait=1"},
    )
    assert answer.status_code == 202
    assert answer.elapsed.total_seconds() >= 1
    # Replicate says "starting" here even while processing; the official client relies on it.
    assert answer.json()["status"] == "starting"


def test_the_status_follows_the_clock_and_cancel_ends_it(api: httpx.Client) -> None:
    created = api.post(
        "/v1/models/acme/painter/predictions", json={"input": {"sandbox_latency": 60}}
    ).json()
    fetched = api.get(f"/v1/predictions/{created['id']}").json()
    assert fetched["status"] == "starting"
    canceled = api.post(f"/v1/predictions/{created['id']}/cancel")
    assert canceled.status_code == 200
    assert canceled.json()["status"] == "canceled"
    assert "completed_at" in canceled.json()
    again = api.post(f"/v1/predictions/{created['id']}/cancel").json()
    assert again["completed_at"] == canceled.json()["completed_at"]


def test_cancel_wakes_a_held_create(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox()
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer t"}) as client:
        created = client.post(
            "/v1/models/acme/painter/predictions", json={"input": {"sandbox_latency": 60}}
        ).json()
        client.post(f"/v1/predictions/{created['id']}/cancel")
        fetched = client.get(f"/v1/predictions/{created['id']}").json()
    assert fetched["status"] == "canceled"
    assert fetched["metrics"]["predict_time"] == 0.0
    assert "started_at" not in fetched


def test_create_by_version_id(api: httpx.Client) -> None:
    latest = api.get("/v1/models/acme/painter").json()["latest_version"]["id"]
    answer = api.post("/v1/predictions", json={"version": latest, "input": {}}, headers=WAIT)
    assert answer.status_code == 201
    assert answer.json()["model"] == "acme/painter"
    assert answer.json()["version"] == latest


def test_create_by_name_and_version(api: httpx.Client) -> None:
    version = "2a6b576af31790b470f0a8442e1e9791213fa13799cbb65a9fc1436e96389574"
    body = {"version": f"lucataco/flux-schnell-lora:{version}", "input": {}}
    answer = api.post("/v1/predictions", json=body, headers=WAIT).json()
    assert (answer["model"], answer["version"], answer["status"]) == (
        "lucataco/flux-schnell-lora",
        version,
        "succeeded",
    )
    fetched = api.get(f"/v1/models/lucataco/flux-schnell-lora/versions/{version}")
    assert fetched.json()["id"] == version


def test_create_by_official_name_in_version_hides_the_version(api: httpx.Client) -> None:
    body = {"version": "black-forest-labs/flux-schnell", "input": {}}
    answer = api.post("/v1/predictions", json=body, headers=WAIT).json()
    assert answer["model"] == "black-forest-labs/flux-schnell"
    assert answer["version"] == "hidden"


def test_an_unknown_bare_version_runs_on_a_placeholder_model(api: httpx.Client) -> None:
    version = "f" * 64
    answer = api.post("/v1/predictions", json={"version": version, "input": {}}).json()
    assert answer["model"] == "sandbox/version-ffffffffffff"
    assert answer["version"] == version


@pytest.mark.parametrize(
    "version",
    ["f" * 64, f"acme/painter:{'f' * 64}", "acme/painter", "not a version", "acme/painter:abc"],
)
def test_strict_versions_refuse_what_replicate_would_not_know(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox], version: str
) -> None:
    sandbox = make_sandbox(strict_versions=True)
    answer = http.post(
        f"{sandbox.base_url}/v1/predictions",
        json={"version": version, "input": {}},
        headers={"Authorization": "Bearer t"},
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "title": "Invalid version or not permitted",
        "detail": "The specified version does not exist "
        "(or perhaps you don't have permission to use it?)",
        "status": 422,
        "invalid_fields": [
            {
                "type": "invalid",
                "field": "version",
                "description": "Invalid version or not permitted",
            }
        ],
    }


def test_strict_versions_accept_derived_and_official(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(strict_versions=True)
    derived = derived_version_id("acme/painter", 0)
    headers = {"Authorization": "Bearer t"}
    url = f"{sandbox.base_url}/v1/predictions"
    http.get(f"{sandbox.base_url}/v1/models/acme/painter", headers=headers)
    for version in (derived, f"acme/painter:{derived}", "black-forest-labs/flux-dev"):
        answer = http.post(url, json={"version": version, "input": {}}, headers=headers)
        assert answer.status_code == 202, (version, answer.text)


def test_create_by_deployment(api: httpx.Client) -> None:
    answer = api.post("/v1/deployments/acme/my-painter/predictions", json={"input": {}})
    assert answer.status_code == 202
    body = answer.json()
    assert body["deployment"] == "acme/my-painter"
    assert HEX64.match(body["version"])


def test_official_models_hide_their_version(api: httpx.Client) -> None:
    assert create(api, "black-forest-labs/flux-schnell")["version"] == "hidden"


def test_proxy_versions_look_like_the_proxy(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(proxy_versions=True)
    answer = http.post(
        f"{sandbox.base_url}/v1/models/black-forest-labs/flux-schnell/predictions",
        json={"input": {}},
        headers={"Authorization": "Bearer hk-proxy-key"},
    )
    assert re.fullmatch(r"dp-[0-9a-f]{32}", answer.json()["version"])


def test_urls_host_points_links_elsewhere(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(urls_host="https://api.replicate.com", page_size=1)
    headers = {"Authorization": "Bearer t"}
    for _ in range(2):
        http.post(
            f"{sandbox.base_url}/v1/models/acme/painter/predictions",
            json={"input": {}},
            headers=headers,
        )
    page = http.get(f"{sandbox.base_url}/v1/predictions", headers=headers).json()
    [only] = page["results"]
    assert only["urls"]["get"] == f"https://api.replicate.com/v1/predictions/{only['id']}"
    # The list's own cursor links still lead back to the sandbox.
    assert page["next"].startswith(f"{sandbox.base_url}/v1/predictions?cursor=")


# Outputs ----------------------------------------------------------------------------------


def test_language_models_return_tokens_made_from_the_prompt(api: httpx.Client) -> None:
    body = create(api, "meta/meta-llama-3-8b-instruct", prompt="Tell me about lighthouses")
    tokens = body["output"]
    assert all(isinstance(token, str) for token in tokens)
    text = "".join(tokens)
    assert "tell me about lighthouses" in text
    assert text.endswith(".")
    assert create(api, "acme/chat-bot", prompt="hi")["output"][0] in (
        "Here",
        "A",
        "Consider",
        "Imagine",
    )


def test_outputs_are_deterministic_for_the_same_input(api: httpx.Client) -> None:
    one = create(api, "acme/tiny-llm", prompt="sea", seed=1)["output"]
    two = create(api, "acme/tiny-llm", prompt="sea", seed=1)["output"]
    assert one == two


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("text", lambda out: isinstance(out, str) and out.endswith(".")),
        ("tokens", lambda out: isinstance(out, list) and out[1].startswith(" ")),
        ("number", lambda out: isinstance(out, float) and 0 <= out < 100),
        ("none", lambda out: out is None),
        ("images", lambda out: isinstance(out, list) and out[0].endswith("/out-0.png")),
        (
            "dict",
            lambda out: (
                set(out) == {"image", "caption", "score"} and out["image"].endswith("/out-0.png")
            ),
        ),
    ],
)
def test_sandbox_output_picks_the_shape(
    api: httpx.Client, mode: str, check: Callable[[Any], bool]
) -> None:
    output = create(api, prompt="a fox", sandbox_output=mode)["output"]
    assert check(output), output


@pytest.mark.parametrize(
    ("inputs", "status", "error"),
    [
        (
            {"sandbox_status": "failed", "sandbox_error": "CUDA out of memory"},
            "failed",
            "CUDA out of memory",
        ),
        ({"sandbox_status": "failed"}, "failed", "sandbox: failed as asked (sandbox_status)"),
        ({"sandbox_status": "aborted"}, "aborted", None),
        ({"sandbox_status": "canceled"}, "canceled", None),
    ],
)
def test_sandbox_status_forces_the_end(
    api: httpx.Client, inputs: dict[str, Any], status: str, error: str | None
) -> None:
    answer = api.post(
        "/v1/models/acme/painter/predictions", json={"input": inputs}, headers=WAIT
    ).json()
    assert (answer["status"], answer["error"], answer["output"]) == (status, error, None)


def test_failure_rate_fails_predictions(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(failure_rate=1.0)
    answer = http.post(
        f"{sandbox.base_url}/v1/models/acme/painter/predictions",
        json={"input": {}},
        headers={"Authorization": "Bearer t", "Prefer": "wait"},
    ).json()
    assert answer["status"] == "failed"
    assert answer["error"] == "sandbox: simulated failure (failure_rate)"


def test_data_is_removed_after_the_file_ttl(api: httpx.Client, sandbox: Sandbox) -> None:
    done = create(api, prompt="a fox")
    sandbox.configure(file_ttl=0)
    removed = api.get(f"/v1/predictions/{done['id']}").json()
    assert (removed["data_removed"], removed["input"], removed["output"]) == (True, {}, None)
    assert removed["status"] == "succeeded"


# Listing ----------------------------------------------------------------------------------


def test_list_is_newest_first_with_working_next_links(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(page_size=3)
    made = [
        api.post("/v1/models/acme/painter/predictions", json={"input": {"i": i}}).json()["id"]
        for i in range(7)
    ]
    seen: list[str] = []
    url: str | None = "/v1/predictions"
    while url:
        page = api.get(url).json()
        seen += [p["id"] for p in page["results"]]
        assert page["previous"] is None
        url = page["next"]
    assert seen == made[::-1]


def test_list_filters_by_creation_time(api: httpx.Client) -> None:
    first = api.post("/v1/models/acme/painter/predictions", json={"input": {}}).json()
    second = api.post("/v1/models/acme/painter/predictions", json={"input": {}}).json()
    after = api.get("/v1/predictions", params={"created_after": second["created_at"]}).json()
    assert [p["id"] for p in after["results"]] == [second["id"]]
    before = api.get("/v1/predictions", params={"created_before": second["created_at"]}).json()
    assert [p["id"] for p in before["results"]] == [first["id"]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert api.get("/v1/predictions", params={"created_after": future}).json()["results"] == []


def test_list_refuses_a_bad_date_and_a_bad_cursor(api: httpx.Client) -> None:
    bad_date = api.get("/v1/predictions", params={"created_after": "yesterday"})
    assert bad_date.status_code == 400
    assert (
        bad_date.json()["detail"] == "created_after must be an ISO 8601 date-time, got 'yesterday'"
    )
    bad_cursor = api.get("/v1/predictions", params={"cursor": "bm9wZQ=="})
    assert bad_cursor.status_code == 400
    assert bad_cursor.json()["detail"] == "cursor 'bm9wZQ==' is not one this server gave out"


def test_list_can_be_missing_like_on_a_proxy(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(list_endpoint=False)
    answer = api.get("/v1/predictions")
    assert answer.status_code == 404
    assert answer.json() == {"title": "Not found", "detail": "Not found.", "status": 404}


# Models -----------------------------------------------------------------------------------


def test_get_model_shows_the_latest_version(api: httpx.Client) -> None:
    model = api.get("/v1/models/acme/painter").json()
    assert (model["owner"], model["name"], model["is_official"]) == ("acme", "painter", False)
    latest = model["latest_version"]
    assert latest["id"] == derived_version_id("acme/painter", 0)
    assert latest["cog_version"]
    assert latest["openapi_schema"]["components"]["schemas"]["Output"]["type"] == "array"


def test_a_bump_keeps_old_versions_working(
    http: httpx.Client, api: httpx.Client, sandbox: Sandbox
) -> None:
    old = api.get("/v1/models/acme/painter").json()["latest_version"]["id"]
    old_output = create(api, prompt="a fox")["output"]
    new = sandbox.bump_version("acme", "painter")
    assert api.get("/v1/models/acme/painter").json()["latest_version"]["id"] == new
    versions = api.get("/v1/models/acme/painter/versions").json()["results"]
    assert [v["id"] for v in versions] == [new, old]
    pinned = api.post(
        "/v1/predictions", json={"version": f"acme/painter:{old}", "input": {}}, headers=WAIT
    ).json()
    assert pinned["version"] == old
    latest = create(api, prompt="a fox")
    assert latest["version"] == new
    assert http.get(latest["output"][0]).content != http.get(old_output[0]).content


def test_unknown_version_of_a_model_is_404(api: httpx.Client) -> None:
    answer = api.get(f"/v1/models/acme/painter/versions/{'0' * 64}")
    assert answer.status_code == 404
    assert answer.json()["detail"] == f"Version {'0' * 64} not found."


# Authentication and errors ----------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "", "Bearer", "Basic abc"])
def test_a_missing_token_is_401(http: httpx.Client, sandbox: Sandbox, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    answer = http.get(f"{sandbox.base_url}/v1/models/acme/painter", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass an authentication token",
        "status": 401,
    }


def test_any_token_works_unless_tokens_are_set(
    http: httpx.Client, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(tokens=["r8_good"])
    url = f"{sandbox.base_url}/v1/models/acme/painter"
    wrong = http.get(url, headers={"Authorization": "Bearer r8_bad"})
    assert wrong.status_code == 401
    assert wrong.json()["detail"] == "You did not pass a valid authentication token"
    assert http.get(url, headers={"Authorization": "Bearer r8_good"}).status_code == 200
    assert http.get(url, headers={"Authorization": "Token r8_good"}).status_code == 200


def test_invalid_inputs_are_422_with_every_field(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/models/acme/painter/predictions",
        json={"input": {"prompt": 7, "seed": "x", "num_outputs": 5, "width": 32, "height": 4096}},
    )
    assert answer.status_code == 422
    assert answer.json() == {
        "title": "Input validation failed",
        "detail": "- input.height: Must be less than or equal to 2048\n"
        "- input.num_outputs: Must be less than or equal to 4\n"
        "- input.prompt: Invalid type. Expected: string, given: integer\n"
        "- input.seed: Invalid type. Expected: integer, given: string\n"
        "- input.width: Must be greater than or equal to 64\n",
        "status": 422,
        "invalid_fields": [
            {
                "type": "number_lte",
                "field": "input.height",
                "description": "Must be less than or equal to 2048",
            },
            {
                "type": "number_lte",
                "field": "input.num_outputs",
                "description": "Must be less than or equal to 4",
            },
            {
                "type": "invalid_type",
                "field": "input.prompt",
                "description": "Invalid type. Expected: string, given: integer",
            },
            {
                "type": "invalid_type",
                "field": "input.seed",
                "description": "Invalid type. Expected: integer, given: string",
            },
            {
                "type": "number_gte",
                "field": "input.width",
                "description": "Must be greater than or equal to 64",
            },
        ],
    }


def test_a_body_that_is_not_json_is_400(sandbox: Sandbox) -> None:
    answer = httpx.post(
        f"{sandbox.base_url}/v1/models/acme/painter/predictions",
        content=b"{not json",
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("The request body is not valid JSON: ")


@pytest.mark.parametrize(
    ("path", "body", "field", "kind", "description"),
    [
        ("/v1/models/a/b/predictions", {}, "input", "required", "input is required"),
        (
            "/v1/models/a/b/predictions",
            {"input": "x"},
            "input",
            "invalid_type",
            "Invalid type. Expected: object, given: string",
        ),
        (
            "/v1/models/a/b/predictions",
            [1],
            "(root)",
            "invalid_type",
            "Invalid type. Expected: object, given: array",
        ),
        ("/v1/predictions", {"input": {}}, "version", "required", "version is required"),
        (
            "/v1/predictions",
            {"input": {}, "version": 3},
            "version",
            "invalid_type",
            "Invalid type. Expected: string, given: integer",
        ),
    ],
)
def test_a_body_of_the_wrong_shape_is_422(
    sandbox: Sandbox, path: str, body: Any, field: str, kind: str, description: str
) -> None:
    answer = httpx.post(
        f"{sandbox.base_url}{path}", json=body, headers={"Authorization": "Bearer t"}
    )
    assert answer.status_code == 422
    assert answer.json()["invalid_fields"] == [
        {"type": kind, "field": field, "description": description}
    ]


def test_unknown_prediction_and_route_are_404(api: httpx.Client, sandbox: Sandbox) -> None:
    assert api.get("/v1/predictions/nope").json() == {
        "title": "Not found",
        "detail": "Not found.",
        "status": 404,
    }
    assert api.post("/v1/predictions/nope/cancel").status_code == 404
    stray = httpx.get(f"{sandbox.base_url}/v1/nothing-here", headers={"Authorization": "Bearer t"})
    assert stray.status_code == 404
    assert stray.headers["content-type"] == "application/problem+json"


# Headers ----------------------------------------------------------------------------------


def test_cancel_after_cancels_a_prediction_that_runs_longer(
    http: httpx.Client,
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(cancel_after_min=0)
    answer = http.post(
        f"{sandbox.base_url}/v1/models/acme/painter/predictions",
        json={"input": {"sandbox_latency": 30}},
        headers={"Authorization": "Bearer t", "Prefer": "wait=5", "Cancel-After": "200ms"},
    )
    assert answer.status_code == 201
    body = answer.json()
    assert body["status"] == "canceled"
    assert body["metrics"]["total_time"] == pytest.approx(0.2, abs=1e-6)


def test_cancel_after_below_the_minimum_is_refused(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/models/acme/painter/predictions",
        json={"input": {}},
        headers={"Cancel-After": "2s"},
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == "Cancel-After must be at least 5 seconds, got '2s'"
    assert (
        api.post(
            "/v1/models/acme/painter/predictions",
            json={"input": {}},
            headers={"Cancel-After": "1h30m"},
        ).status_code
        == 202
    )


def test_a_malformed_cancel_after_is_refused(api: httpx.Client) -> None:
    answer = api.post(
        "/v1/models/acme/painter/predictions", json={"input": {}}, headers={"Cancel-After": "soon"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == (
        "Cancel-After must be a duration such as 30s, 5m, 1h30m or 90, got 'soon'"
    )


# The whole contract -----------------------------------------------------------------------


def test_every_endpoint_answers_what_the_schema_declares(sandbox: Sandbox) -> None:
    checked: set[tuple[str, str, int]] = set()

    def record(response: httpx.Response) -> None:
        openapi_checked(response)
        template = match_path(response.request.url.path.removeprefix("/v1"))
        checked.add((response.request.method, template, response.status_code))

    with httpx.Client(
        base_url=sandbox.base_url,
        headers={"Authorization": "Bearer t"},
        event_hooks={"response": [record]},
    ) as api:
        done = create(api)
        api.post("/v1/models/acme/painter/predictions", json={"input": {}})
        version = done["version"]
        api.post("/v1/predictions", json={"version": version, "input": {}}, headers=WAIT)
        api.post("/v1/predictions", json={"version": version, "input": {}})
        api.post("/v1/deployments/acme/prod/predictions", json={"input": {}}, headers=WAIT)
        api.post("/v1/deployments/acme/prod/predictions", json={"input": {}})
        api.get(f"/v1/predictions/{done['id']}")
        api.post(f"/v1/predictions/{done['id']}/cancel")
        api.get("/v1/predictions")
        api.get("/v1/models/acme/painter")
        api.get("/v1/models/acme/painter/versions")
        api.get(f"/v1/models/acme/painter/versions/{version}")
        uploaded = api.post("/v1/files", files={"content": ("a.txt", b"a", "text/plain")}).json()
        api.get(f"/v1/files/{uploaded['id']}")
        api.get("/v1/files")
        api.get(f"/v1/files/{uploaded['id']}/download")
        api.delete(f"/v1/files/{uploaded['id']}")
        api.get(f"/v1/files/{uploaded['id']}")
        api.get(f"/v1/files/{uploaded['id']}/download")
        sandbox.configure(max_upload_bytes=1)
        api.post("/v1/files", files={"content": ("a.txt", b"ab", "text/plain")})
    assert checked == {
        ("POST", "/models/{model_owner}/{model_name}/predictions", 201),
        ("POST", "/models/{model_owner}/{model_name}/predictions", 202),
        ("POST", "/predictions", 201),
        ("POST", "/predictions", 202),
        ("POST", "/deployments/{deployment_owner}/{deployment_name}/predictions", 201),
        ("POST", "/deployments/{deployment_owner}/{deployment_name}/predictions", 202),
        ("GET", "/predictions/{prediction_id}", 200),
        ("POST", "/predictions/{prediction_id}/cancel", 200),
        ("GET", "/predictions", 200),
        ("GET", "/models/{model_owner}/{model_name}", 200),
        ("GET", "/models/{model_owner}/{model_name}/versions", 200),
        ("GET", "/models/{model_owner}/{model_name}/versions/{version_id}", 200),
        ("POST", "/files", 201),
        ("POST", "/files", 413),
        ("GET", "/files/{file_id}", 200),
        ("GET", "/files/{file_id}", 404),
        ("GET", "/files", 200),
        ("GET", "/files/{file_id}/download", 200),
        ("GET", "/files/{file_id}/download", 404),
        ("DELETE", "/files/{file_id}", 204),
    }
