"""Parsing the API's objects: everything real servers and proxies send, and what is unusable."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from openapi import validate_component

from batchrun.api.objects import TERMINAL_STATUSES, Model, Prediction, UploadedFile
from batchrun.errors import ServerError
from batchrun.output_files import joined_output

# The proxy's answer from reference/replicate-proxy-access.md, verbatim apart from a shorter prompt.
PROXY_PREDICTION: dict[str, Any] = {
    "id": "ctdwaehfz1rm80cmd5nsjd8114",
    "model": "black-forest-labs/flux-schnell",
    "version": "dp-4d0bcc010b3049749a251855f12800be",
    "input": {"aspect_ratio": "1:1", "num_outputs": 1, "prompt": "a lighthouse"},
    "logs": "Using seed: 62182\n",
    "output": [
        "https://replicate.delivery/xezq/RoEhEdyl8PoIGFFPg46TU4Svj24i1NDVYmzehJfqLuX9nTFUA/out-0.jpg"
    ],
    "data_removed": False,
    "error": None,
    "status": "succeeded",
    "created_at": "2025-01-15T10:03:39.896Z",
    "started_at": "2025-01-15T10:03:40.584470194Z",
    "completed_at": "2025-01-15T10:03:41.142386377Z",
    "urls": {
        "cancel": "https://api.replicate.com/v1/predictions/ctdwaehfz1rm80cmd5nsjd8114/cancel",
        "get": "https://api.replicate.com/v1/predictions/ctdwaehfz1rm80cmd5nsjd8114",
        "stream": "https://stream.replicate.com/v1/files/bcwr-q57vie7wuzg3wxv2hvpajgmzqzmxe67kq",
        "web": "https://replicate.com/p/ctdwaehfz1rm80cmd5nsjd8114",
    },
    "metrics": {"image_count": 1, "predict_time": 0.557916184},
}


def test_a_proxy_prediction_parses_with_its_dp_version() -> None:
    validate_component("schemas_prediction_response", PROXY_PREDICTION)
    p = Prediction.from_json(PROXY_PREDICTION)
    assert p.id == "ctdwaehfz1rm80cmd5nsjd8114"
    assert p.status == "succeeded"
    assert p.terminal
    assert p.model == "black-forest-labs/flux-schnell"
    assert p.version == "dp-4d0bcc010b3049749a251855f12800be"
    assert p.input == {"aspect_ratio": "1:1", "num_outputs": 1, "prompt": "a lighthouse"}
    assert p.output == PROXY_PREDICTION["output"]
    assert p.error is None
    assert p.logs == "Using seed: 62182\n"
    assert p.metrics == {"image_count": 1, "predict_time": 0.557916184}
    assert p.created_at == "2025-01-15T10:03:39.896Z"
    assert p.started_at == "2025-01-15T10:03:40.584470194Z"
    assert p.completed_at == "2025-01-15T10:03:41.142386377Z"
    assert p.urls["get"] == "https://api.replicate.com/v1/predictions/ctdwaehfz1rm80cmd5nsjd8114"
    assert p.raw is PROXY_PREDICTION


def test_a_just_created_prediction_with_only_the_required_fields() -> None:
    data = {
        "id": "abc",
        "model": "acme/llm",
        "version": "hidden",
        "input": {"prompt": "hi"},
        "output": None,
        "data_removed": False,
        "error": None,
        "status": "starting",
        "created_at": "2025-01-15T10:03:39.896Z",
        "urls": {"get": "https://x/g", "cancel": "https://x/c", "web": "https://x/w"},
    }
    validate_component("schemas_prediction_response", data)
    p = Prediction.from_json(data)
    assert (p.version, p.status, p.terminal) == ("hidden", "starting", False)
    assert (p.logs, p.metrics, p.started_at, p.completed_at) == ("", {}, None, None)


def test_missing_and_null_optional_fields_get_empty_values() -> None:
    p = Prediction.from_json({"id": "abc", "status": "processing", "logs": None, "urls": None})
    assert p == Prediction(
        id="abc",
        status="processing",
        model="",
        version="",
        input={},
        output=None,
        error=None,
        logs="",
        metrics={},
        created_at=None,
        started_at=None,
        completed_at=None,
        urls={},
        raw={"id": "abc", "status": "processing", "logs": None, "urls": None},
    )


@pytest.mark.parametrize("status", sorted(TERMINAL_STATUSES))
def test_every_terminal_status_is_terminal(status: str) -> None:
    assert Prediction.from_json({"id": "a", "status": status}).terminal


def test_aborted_is_terminal() -> None:
    # The official client polls forever on `aborted`; a deadline hit before start ends here.
    assert "aborted" in TERMINAL_STATUSES
    assert Prediction.from_json({"id": "a", "status": "aborted"}).terminal


@pytest.mark.parametrize("status", ["starting", "processing", "queued", "booting"])
def test_unfinished_and_unknown_statuses_are_kept_verbatim(status: str) -> None:
    p = Prediction.from_json({"id": "a", "status": status})
    assert (p.status, p.terminal) == (status, False)


@pytest.mark.parametrize(
    "output",
    [
        None,
        "https://replicate.delivery/a/out.png",
        ["https://replicate.delivery/a/0.png", "https://replicate.delivery/a/1.png"],
        {"image": "https://replicate.delivery/a/0.png", "caption": "a fox"},
        ["Once", " upon", " a", " time"],
        42,
        0.5,
        True,
        [[1, 2], [3, 4]],
    ],
)
def test_every_output_shape_is_kept_as_sent(output: Any) -> None:
    assert (
        Prediction.from_json({"id": "a", "status": "succeeded", "output": output}).output == output
    )


def test_a_failed_prediction_carries_its_error_text() -> None:
    p = Prediction.from_json({"id": "a", "status": "failed", "error": "CUDA out of memory"})
    assert p.error == "CUDA out of memory"


def test_a_structured_error_is_kept_readable() -> None:
    p = Prediction.from_json({"id": "a", "status": "failed", "error": {"code": "E1", "msg": "x"}})
    assert p.error == "{'code': 'E1', 'msg': 'x'}"


def test_wrongly_typed_optional_fields_do_not_break_parsing() -> None:
    p = Prediction.from_json(
        {
            "id": "a",
            "status": "succeeded",
            "model": 3,
            "input": ["not", "a", "dict"],
            "metrics": "fast",
            "created_at": 12,
            "urls": {"get": "https://x/g", "stream": None},
        }
    )
    assert (p.model, p.input, p.metrics, p.created_at) == ("", {}, {}, None)
    assert p.urls == {"get": "https://x/g"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"status": "starting"}, "the prediction in the response has no id"),
        ({"id": "", "status": "starting"}, "the prediction in the response has no id"),
        ({"id": 7, "status": "starting"}, "the prediction in the response has no id"),
        ({"id": "abc"}, "prediction abc in the response has no status"),
        ({"id": "abc", "status": None}, "prediction abc in the response has no status"),
        ([], "expected a JSON object describing a prediction, got list"),
        ("<html>", "expected a JSON object describing a prediction, got str"),
        (None, "expected a JSON object describing a prediction, got NoneType"),
    ],
)
def test_a_prediction_without_id_or_status_is_a_server_error(data: Any, message: str) -> None:
    with pytest.raises(ServerError) as caught:
        Prediction.from_json(data)
    assert str(caught.value) == message


MODEL = {
    "url": "https://replicate.com/black-forest-labs/flux-schnell",
    "owner": "black-forest-labs",
    "name": "flux-schnell",
    "description": "fast",
    "visibility": "public",
    "github_url": None,
    "paper_url": None,
    "license_url": None,
    "run_count": 12,
    "cover_image_url": None,
    "default_example": None,
    "is_official": True,
    "latest_version": {
        "id": "5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637",
        "created_at": "2024-07-30T00:00:00Z",
    },
}


def test_a_model_parses_with_its_latest_version_id() -> None:
    validate_component("schemas_model_response", MODEL)
    assert Model.from_json(MODEL) == Model(
        owner="black-forest-labs",
        name="flux-schnell",
        latest_version="5599ed30703defd1d160a25a63321b4dec97101d98b4674bcc56e41f62f35637",
        is_official=True,
        visibility="public",
    )


def test_a_model_without_versions_has_no_latest_version() -> None:
    data = copy.deepcopy(MODEL)
    data["latest_version"] = None
    del data["visibility"], data["is_official"]
    validate_component("schemas_model_response", data)
    model = Model.from_json(data)
    assert (model.latest_version, model.is_official, model.visibility) == (None, False, None)


def test_a_model_without_owner_is_a_server_error() -> None:
    with pytest.raises(ServerError) as caught:
        Model.from_json({"name": "x"})
    assert str(caught.value) == "the model in the response has no owner or name"


FILE = {
    "id": "cneqzikepnug6xezperrr4z55o",
    "name": "photo.png",
    "content_type": "image/png",
    "size": 69420,
    "etag": "x",
    "checksums": {"sha256": "f047f8e745f9996c6e386064e06cb2007b8e6bc0a968a334fc0d2b2d64012066"},
    "metadata": {},
    "created_at": "2024-02-21T12:54:18.578761Z",
    "expires_at": "2024-02-21T13:54:18.578761Z",
    "urls": {"get": "https://api.replicate.com/v1/files/cneqzikepnug6xezperrr4z55o"},
}


def test_an_uploaded_file_parses_with_its_url_and_checksum() -> None:
    validate_component("schemas_file_response", FILE)
    assert UploadedFile.from_json(FILE) == UploadedFile(
        id="cneqzikepnug6xezperrr4z55o",
        url="https://api.replicate.com/v1/files/cneqzikepnug6xezperrr4z55o",
        size=69420,
        sha256="f047f8e745f9996c6e386064e06cb2007b8e6bc0a968a334fc0d2b2d64012066",
        content_type="image/png",
        expires_at="2024-02-21T13:54:18.578761Z",
    )


def test_an_uploaded_file_without_url_is_a_server_error() -> None:
    with pytest.raises(ServerError) as caught:
        UploadedFile.from_json({"id": "abc", "urls": {}})
    assert str(caught.value) == "file abc in the response has no urls.get"


def test_token_lists_are_joined_and_url_lists_are_not() -> None:
    assert joined_output(["Once", " upon", " a", " time"]) == "Once upon a time"
    assert joined_output(["https://a/1.png", "https://a/2.png"]) == [
        "https://a/1.png",
        "https://a/2.png",
    ]
    assert joined_output(["data:text/plain,a", "data:text/plain,b"]) == [
        "data:text/plain,a",
        "data:text/plain,b",
    ]
    assert joined_output([1, 2]) == [1, 2]
    assert joined_output([]) == []
    assert joined_output("text") == "text"
