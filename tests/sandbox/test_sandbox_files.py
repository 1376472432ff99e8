"""The Files API and output delivery over real sockets: uploads, downloads, expiry, slow files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from batchrun.sandbox import Sandbox

WAIT = {"Prefer": "wait"}


def upload(api: httpx.Client, data: bytes = b"hello", **fields: str) -> httpx.Response:
    return api.post("/v1/files", files={"content": ("notes.txt", data, "text/plain")}, data=fields)


def finished(api: httpx.Client, **inputs: Any) -> dict[str, Any]:
    answer = api.post("/v1/models/acme/painter/predictions", json={"input": inputs}, headers=WAIT)
    body: dict[str, Any] = answer.json()
    return body


# Files API --------------------------------------------------------------------------------


def test_upload_answers_the_file_record(api: httpx.Client, sandbox: Sandbox) -> None:
    answer = upload(api, metadata=json.dumps({"customer_reference_id": 123}))
    assert answer.status_code == 201
    record = answer.json()
    assert record["name"] == "notes.txt"
    assert record["content_type"] == "text/plain"
    assert record["size"] == 5
    assert record["checksums"] == {"sha256": hashlib.sha256(b"hello").hexdigest()}
    assert record["metadata"] == {"customer_reference_id": 123}
    assert record["urls"] == {"get": f"{sandbox.base_url}/v1/files/{record['id']}"}
    assert record["created_at"] < record["expires_at"]


def test_filename_and_type_fields_override_the_part(api: httpx.Client) -> None:
    record = upload(api, filename="photo.jpg", type="image/jpeg").json()
    assert (record["name"], record["content_type"]) == ("photo.jpg", "image/jpeg")


def test_an_upload_can_be_read_listed_downloaded_and_deleted(
    api: httpx.Client, http: httpx.Client, sandbox: Sandbox
) -> None:
    data = bytes(range(256)) * 40  # binary, with CR and LF bytes inside
    record = upload(api, data).json()
    assert api.get(f"/v1/files/{record['id']}").json() == record
    assert [f["id"] for f in api.get("/v1/files").json()["results"]] == [record["id"]]
    download = api.get(f"/v1/files/{record['id']}/download")
    assert download.content == data
    assert download.headers["content-type"] == "text/plain; charset=utf-8"
    anonymous = http.get(f"{sandbox.base_url}/v1/files/{record['id']}/download")
    assert anonymous.status_code == 401
    assert api.delete(f"/v1/files/{record['id']}").status_code == 204
    gone = api.get(f"/v1/files/{record['id']}")
    assert gone.status_code == 404
    assert gone.json() == {"title": "Not found", "detail": "File not found", "status": 404}


def test_a_file_over_the_limit_is_413(api: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.configure(max_upload_bytes=4)
    answer = upload(api, b"hello")
    assert answer.status_code == 413
    assert answer.json() == {
        "title": "Content Too Large",
        "detail": "Files must be less than 4 bytes in size",
        "status": 413,
    }


def test_the_default_limit_reads_like_replicate(api: httpx.Client, sandbox: Sandbox) -> None:
    from batchrun.sandbox.files import _too_large

    assert _too_large(sandbox.state.config.max_upload_bytes).detail == (
        "Files must be less than 100MB in size"
    )


def test_an_upload_without_content_is_422(sandbox: Sandbox) -> None:
    answer = httpx.post(
        f"{sandbox.base_url}/v1/files",
        files={"other": ("a.txt", b"x", "text/plain")},
        headers={"Authorization": "Bearer t"},
    )
    assert answer.status_code == 422
    assert answer.json()["invalid_fields"] == [
        {"type": "required", "field": "content", "description": "content is required"}
    ]


def test_an_upload_that_is_not_multipart_is_400(sandbox: Sandbox) -> None:
    answer = httpx.post(
        f"{sandbox.base_url}/v1/files", json={"content": "x"}, headers={"Authorization": "Bearer t"}
    )
    assert answer.status_code == 400
    assert answer.json()["detail"] == "POST /v1/files takes multipart/form-data"


def test_metadata_that_is_not_an_object_is_422(api: httpx.Client) -> None:
    answer = upload(api, metadata="[1, 2]")
    assert answer.status_code == 422
    assert answer.json()["detail"] == "- metadata: metadata must be a JSON object\n"


# Output files -----------------------------------------------------------------------------


def test_output_files_need_no_token_and_tokens_sent_are_counted(
    api: httpx.Client, http: httpx.Client, sandbox: Sandbox
) -> None:
    [url] = finished(api)["output"]
    anonymous = http.get(url)
    assert anonymous.status_code == 200
    assert anonymous.headers["content-type"] == "image/png"
    assert http.get(url, headers={"Authorization": "Bearer r8_leaked"}).content == anonymous.content
    stats = sandbox.state.snapshot()
    assert (stats["delivery_requests"], stats["delivery_authorized"], stats["downloads"]) == (
        2,
        1,
        2,
    )
    assert stats["download_bytes"] == 2 * len(anonymous.content)


def test_output_files_expire_after_the_ttl(
    api: httpx.Client, http: httpx.Client, sandbox: Sandbox
) -> None:
    [url] = finished(api)["output"]
    assert http.get(url).status_code == 200
    sandbox.configure(file_ttl=0)
    expired = http.get(url)
    assert (expired.status_code, expired.text) == (404, "Not Found")
    sandbox.configure(expired_status=410)
    assert http.get(url).status_code == 410
    assert sandbox.state.snapshot()["expired_downloads"] == 2


def test_only_files_of_succeeded_predictions_exist(
    api: httpx.Client, http: httpx.Client, sandbox: Sandbox
) -> None:
    done = finished(api, num_outputs=2)
    base = f"{sandbox.base_url}/delivery/{done['id']}"
    assert http.get(f"{base}/out-1.png").status_code == 200
    assert http.get(f"{base}/out-2.png").status_code == 404
    assert http.get(f"{sandbox.base_url}/delivery/nope/out-0.png").status_code == 404
    running = api.post(
        "/v1/models/acme/painter/predictions", json={"input": {"sandbox_latency": 60}}
    ).json()
    assert http.get(f"{sandbox.base_url}/delivery/{running['id']}/out-0.png").status_code == 404


def test_dict_outputs_serve_their_image(api: httpx.Client, http: httpx.Client) -> None:
    output = finished(api, sandbox_output="dict")["output"]
    assert http.get(output["image"]).headers["content-type"] == "image/png"


def test_downloads_can_be_slow(make_sandbox: Callable[..., Sandbox], http: httpx.Client) -> None:
    sandbox = make_sandbox()
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer t"}) as api:
        [url] = finished(api)["output"]
    fast = http.get(url)
    sandbox.configure(download_bytes_per_second=20_000)
    slow = http.get(url)
    assert slow.content == fast.content
    assert slow.headers["content-length"] == str(len(fast.content))
    assert slow.elapsed.total_seconds() >= 0.9 * len(fast.content) / 20_000


@pytest.mark.parametrize("second_origin", [False, True])
def test_output_urls_point_at_the_file_origin(
    make_sandbox: Callable[..., Sandbox], second_origin: bool
) -> None:
    sandbox = make_sandbox(second_origin=second_origin)
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer t"}) as api:
        [url] = finished(api)["output"]
    assert url.startswith(f"{sandbox.files_base_url}/delivery/")
    assert (sandbox.files_base_url == sandbox.base_url) is not second_origin
