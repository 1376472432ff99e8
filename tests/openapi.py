"""Contract checks against Replicate's published OpenAPI schema (HTTP API 1.0.0-a1).

`tests/data/replicate-openapi.json` is a verbatim copy of `../shared/reference/`, kept in the repo
so CI on a clean clone has it.

The schema is OpenAPI 3.1 but still uses two 3.0 habits that plain JSON Schema 2020-12 reads
differently, so they are translated once here:

- `nullable: true` beside a `type` means the value may also be null (`error: null` is in every
  successful prediction);
- `version` is `oneOf: [string, enum ["hidden"]]`, and "hidden" matches both branches, which
  `oneOf` forbids; the intent is "either", so every `oneOf` is read as `anyOf`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema

SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "replicate-openapi.json"


def _translate(node: Any) -> Any:
    if isinstance(node, dict):
        out = {key: _translate(value) for key, value in node.items()}
        if out.pop("nullable", False) and "type" in out:
            kind = out["type"]
            out["type"] = [*kind, "null"] if isinstance(kind, list) else [kind, "null"]
        if "oneOf" in out:
            out["anyOf"] = out.pop("oneOf")
        return out
    if isinstance(node, list):
        return [_translate(item) for item in node]
    return node


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document, translated to plain JSON Schema 2020-12."""
    raw = json.loads(SCHEMA_PATH.read_text())
    translated: dict[str, Any] = _translate(raw)
    return translated


def _validator(schema: Mapping[str, Any]) -> jsonschema.protocols.Validator:
    # Resolve `#/components/...` references against the whole document.
    root = {**document(), **schema}
    cls = jsonschema.validators.validator_for(root, default=jsonschema.Draft202012Validator)
    return cls(root, format_checker=cls.FORMAT_CHECKER)


def component(name: str) -> dict[str, Any]:
    """The schema of `#/components/schemas/<name>`."""
    schema: dict[str, Any] = document()["components"]["schemas"][name]
    return schema


def validate_component(name: str, instance: Any) -> None:
    """Raise `jsonschema.ValidationError` unless `instance` matches the named component."""
    _validator(component(name)).validate(instance)


def _operation(path: str, method: str) -> dict[str, Any]:
    op: dict[str, Any] = document()["paths"][path][method.lower()]
    return op


def match_path(url_path: str) -> str:
    """The OpenAPI path template (`/predictions/{prediction_id}`) a request path belongs to.

    `url_path` is the path after the API's `/v1` (`/predictions/abc`).
    """
    best: str | None = None
    for template in document()["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, url_path) and (best is None or template.count("{") < best.count("{")):
            best = template
    if best is None:
        raise LookupError(f"no operation in the OpenAPI schema matches {url_path}")
    return best


def validate_request(
    url_path: str, method: str, body: Any, headers: Mapping[str, str] | None = None
) -> None:
    """Check a request's JSON body and its declared headers (e.g. `Prefer`) against the schema."""
    op = _operation(match_path(url_path), method)
    for parameter in op.get("parameters", []):
        if "$ref" in parameter:
            ref = parameter["$ref"].removeprefix("#/components/parameters/")
            parameter = document()["components"]["parameters"][ref]
        if parameter["in"] == "header" and headers is not None:
            value = {k.lower(): v for k, v in headers.items()}.get(parameter["name"].lower())
            if value is not None:
                _validator(parameter["schema"]).validate(value)
    content = op.get("requestBody", {}).get("content", {})
    if "application/json" in content:
        _validator(content["application/json"]["schema"]).validate(body)


def validate_response(url_path: str, method: str, status: int, body: Any) -> None:
    """Check a response body against the schema the operation declares for `status`."""
    op = _operation(match_path(url_path), method)
    responses = op["responses"]
    if str(status) not in responses:
        raise AssertionError(f"{method} {url_path} declares no {status} response")
    content = responses[str(status)].get("content", {})
    for media in ("application/json", "application/problem+json"):
        if media in content:
            _validator(content[media]["schema"]).validate(body)
            return


def _json_of(message: httpx.Request | httpx.Response) -> Any:
    if "json" not in message.headers.get("content-type", ""):
        return None  # multipart uploads, images, proxy pages: nothing the schema describes
    return json.loads(message.content) if message.content else None


def openapi_checked(response: httpx.Response) -> None:
    """Check a /v1 exchange against Replicate's OpenAPI schema.

    The request's JSON body and headers must match the operation; the answer must match the
    schema the operation declares for its status. Errors the schema does not declare (401, 404,
    422, 429 on most operations) must still be problem+json `{title, detail, status}`, and a
    5xx may be a proxy's HTML page.
    """
    request = response.request
    if not request.url.path.startswith("/v1/"):
        return
    path = request.url.path.removeprefix("/v1")
    response.read()
    validate_request(path, request.method, _json_of(request), dict(request.headers))
    answer = _json_of(response)
    try:
        validate_response(path, request.method, response.status_code, answer)
    except AssertionError as error:
        if response.status_code < 400 or "declares no" not in str(error):
            raise
        if response.status_code >= 500 and response.headers["content-type"].startswith("text/html"):
            return
        assert response.headers["content-type"] == "application/problem+json", answer
        assert answer["status"] == response.status_code, answer
        assert isinstance(answer["title"], str), answer
        assert isinstance(answer["detail"], str), answer
