"""The /v1 endpoints: predictions (create, get, cancel, list), models and versions.

Handlers raise `Problem` for every error; the app turns it into problem+json. Faults that act
on the connection (resets, 5xx, delays) and authentication happen before a handler runs, in
`batchrun.sandbox.app`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchrun.sandbox.inputs import (
    InvalidField,
    check_input,
    parse_duration,
    parse_prefer,
    wrong_type,
)
from batchrun.sandbox.models import is_model_name, model_kind
from batchrun.sandbox.predictions import EPOCH, Origins, Prediction, iso, render
from batchrun.sandbox.problems import Problem, bad_request, invalid_input, not_found
from batchrun.sandbox.store import SandboxState, Target

DROP_CONNECTION = "batchrun.sandbox.drop"
"""Scope key a handler sets to have its answer replaced by a dropped connection."""


def origins(request: Request, state: SandboxState) -> Origins:
    """Where links in answers point: the sandbox itself unless the settings say otherwise."""
    own = str(request.base_url).rstrip("/")
    config = state.config
    return Origins(api=config.urls_host or own, files=config.files_base_url or own)


def throttled(wait: float) -> Problem:
    """429 with the wait in the Retry-After header (whole seconds) and in the body (exact)."""
    seconds = max(1, math.ceil(wait))
    unit = "second" if seconds == 1 else "seconds"
    return Problem(
        429,
        "Request was throttled.",
        f"Request was throttled. Expected available in {seconds} {unit}.",
        headers={"Retry-After": str(seconds)},
        extra={"retry_after": max(0.001, round(wait, 3))},
    )


def model_name(request: Request) -> tuple[str, str]:
    """The path's owner and name; 404 unless the sandbox serves that model."""
    owner, name = request.path_params["owner"], request.path_params["name"]
    if not is_model_name(owner, name):
        raise not_found(f"Model {owner}/{name} not found.")
    return owner, name


# Bytes of a JSON request body: a create with a few inline data URIs (256 KB each) is far less.
MAX_JSON_BODY = 16 << 20


async def bounded_body(request: Request, limit: int, too_large: Problem) -> bytes:
    """The request's body, read only up to `limit` bytes: a chunked body (which declares no
    length) is refused as soon as it passes the limit, not after it was read whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    pieces: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise too_large
        pieces.append(piece)
    return b"".join(pieces)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or 400/413/422 as Replicate answers a body it cannot use."""
    too_large = Problem(413, "Content Too Large", f"The request body is over {MAX_JSON_BODY} bytes")
    raw = await bounded_body(request, MAX_JSON_BODY, too_large)
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise bad_request(f"The request body is not valid JSON: {error}") from None
    if not isinstance(body, dict):
        raise invalid_input([wrong_type("(root)", "object", body)])
    return body


def _checked_input(body: dict[str, Any]) -> dict[str, Any]:
    if "input" not in body:
        raise invalid_input([InvalidField("input", "required", "input is required")])
    inputs = body["input"]
    if not isinstance(inputs, dict):
        raise invalid_input([wrong_type("input", "object", inputs)])
    problems = check_input(inputs)
    if problems:
        raise invalid_input(problems)
    return inputs


class V1Routes:
    """The /v1 handlers over one store."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The routes, in the order Starlette should try them."""
        return [
            Route("/v1/predictions", self.create_by_version, methods=["POST"]),
            Route("/v1/predictions", self.list_predictions, methods=["GET"]),
            Route("/v1/predictions/{prediction_id}", self.get_prediction, methods=["GET"]),
            Route(
                "/v1/predictions/{prediction_id}/cancel", self.cancel_prediction, methods=["POST"]
            ),
            Route("/v1/models/{owner}/{name}/predictions", self.create_by_model, methods=["POST"]),
            Route(
                "/v1/deployments/{owner}/{name}/predictions",
                self.create_by_deployment,
                methods=["POST"],
            ),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{owner}/{name}", self.get_model, methods=["GET"]),
            Route("/v1/models/{owner}/{name}/versions", self.list_versions, methods=["GET"]),
            Route(
                "/v1/models/{owner}/{name}/versions/{version_id}",
                self.get_version,
                methods=["GET"],
            ),
        ]

    # Creating -----------------------------------------------------------------------------

    def _existing(self, request: Request, *, described: bool = False) -> tuple[str, str]:
        """The path's model, 404 unless it exists; `described` for the model endpoints, which
        a proxy may lack altogether (`models_endpoint`)."""
        config = self.state.config
        if described and not config.models_endpoint:
            raise not_found()
        owner, name = model_name(request)
        if config.only_models and f"{owner}/{name}" not in config.only_models:
            raise not_found(f"Model {owner}/{name} not found.")
        return owner, name

    async def create_by_model(self, request: Request) -> Response:
        """POST /v1/models/{owner}/{name}/predictions."""
        owner, name = self._existing(request)
        return await self._create(request, lambda body: self.state.target_for_model(owner, name))

    async def create_by_deployment(self, request: Request) -> Response:
        """POST /v1/deployments/{owner}/{name}/predictions."""
        owner, name = self._existing(request)
        return await self._create(
            request, lambda body: self.state.target_for_model(owner, name, deployment=True)
        )

    async def create_by_version(self, request: Request) -> Response:
        """POST /v1/predictions with `version`: 64 hex, `owner/name:64hex` or `owner/name`."""

        def target(body: dict[str, Any]) -> Target:
            version = body.get("version")
            if version is None:
                raise invalid_input([InvalidField("version", "required", "version is required")])
            if not isinstance(version, str):
                raise invalid_input([wrong_type("version", "string", version)])
            return self.state.target_for_version(version)

        return await self._create(request, target)

    async def _create(
        self, request: Request, resolve: Callable[[dict[str, Any]], Target]
    ) -> Response:
        state = self.state
        config = state.config
        bucket = state.faults.bucket
        wait_for_token = bucket.take() if bucket is not None else None
        if wait_for_token is not None:
            raise throttled(wait_for_token)
        body = await json_body(request)
        inputs = _checked_input(body)
        target = resolve(body)
        cancel_after = self._cancel_after(request)
        wait = parse_prefer(request.headers.get("prefer")) if config.honor_wait else None
        lose = state.faults.roll("lose_create", config.lose_create_response_rate)
        prediction = state.create(target, inputs, cancel_after=cancel_after)
        if wait is not None:
            await self._hold(prediction, wait)
        now = state.clock()
        answer = self._render(request, prediction, now, create=True)
        if lose:
            state.count("lost_creates")
            request.scope[DROP_CONNECTION] = True
        return JSONResponse(answer, status_code=201 if prediction.is_terminal(now) else 202)

    def _cancel_after(self, request: Request) -> float | None:
        header = request.headers.get("cancel-after")
        if header is None:
            return None
        try:
            seconds = parse_duration(header)
        except ValueError as error:
            raise bad_request(str(error)) from None
        minimum = self.state.config.cancel_after_min
        if seconds < minimum:
            raise bad_request(f"Cancel-After must be at least {minimum:g} seconds, got {header!r}")
        return seconds

    async def _hold(self, prediction: Prediction, seconds: float) -> None:
        # Sleep until the known end or the wait runs out; a cancel sets `changed` to wake us.
        state = self.state
        deadline = state.clock() + seconds
        state.hold(1)
        state.waiting.add(prediction)
        try:
            while not state.closing:
                now = state.clock()
                end = prediction.ended_at
                if now >= end or now >= deadline:
                    return
                if prediction.changed is None:
                    prediction.changed = anyio.Event()
                event = prediction.changed
                with anyio.move_on_after(min(end, deadline) - now + 0.001):
                    await event.wait()
        finally:
            state.waiting.discard(prediction)
            state.hold(-1)

    # Reading ------------------------------------------------------------------------------

    def _render(
        self, request: Request, prediction: Prediction, now: float, *, create: bool = False
    ) -> dict[str, Any]:
        config = self.state.config
        return render(
            prediction,
            now,
            origins(request, self.state),
            file_ttl=config.file_ttl,
            remove_data=config.remove_data,
            create=create,
        )

    def _prediction(self, request: Request) -> Prediction:
        found = self.state.get(request.path_params["prediction_id"])
        if found is None:
            raise not_found()
        return found

    async def get_prediction(self, request: Request) -> Response:
        """GET /v1/predictions/{id}."""
        prediction = self._prediction(request)
        return JSONResponse(self._render(request, prediction, self.state.clock()))

    async def cancel_prediction(self, request: Request) -> Response:
        """POST /v1/predictions/{id}/cancel: ends it as `canceled` unless it already ended."""
        prediction = self.state.cancel(request.path_params["prediction_id"])
        if prediction is None:
            raise not_found()
        return JSONResponse(self._render(request, prediction, self.state.clock()))

    async def list_predictions(self, request: Request) -> Response:
        """GET /v1/predictions: newest first, `created_after`/`created_before`, cursor pages."""
        if not self.state.config.list_endpoint:
            raise not_found()
        query = request.query_params
        after = _timestamp(query, "created_after")
        before = _timestamp(query, "created_before")
        cursor = _cursor(query.get("cursor"))
        found, next_seq = self.state.page(after, before, cursor)
        now = self.state.clock()
        next_url = None
        if next_seq is not None:
            params = {k: query[k] for k in ("created_after", "created_before") if k in query}
            params["cursor"] = base64.urlsafe_b64encode(f"s={next_seq}".encode()).decode()
            own = str(request.base_url).rstrip("/")
            next_url = f"{own}/v1/predictions?{urlencode(params)}"
        return JSONResponse(
            {
                "next": next_url,
                "previous": None,
                "results": [self._render(request, p, now) for p in found],
            }
        )

    # Models -------------------------------------------------------------------------------

    async def get_model(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}, with `latest_version`."""
        owner, name = self._existing(request, described=True)
        return JSONResponse(self._model_json(request, owner, name))

    async def list_models(self, request: Request) -> Response:
        """GET /v1/models: the models asked about so far (one page)."""
        config = self.state.config
        if not (config.models_endpoint and config.models_list):
            raise not_found()
        results = [
            self._model_json(request, model.owner, model.name) for model in self.state.models_seen()
        ]
        return JSONResponse({"next": None, "previous": None, "results": results})

    def _model_json(self, request: Request, owner: str, name: str) -> dict[str, Any]:
        model = self.state.model(owner, name)
        api = origins(request, self.state).api
        return {
            "url": f"{api}/{owner}/{name}",
            "owner": owner,
            "name": name,
            "description": f"A sandbox model: {model_description(model.full_name)}",
            "visibility": "public",
            "is_official": owner in self.state.config.official_owners,
            "github_url": None,
            "paper_url": None,
            "license_url": None,
            "run_count": model.run_count,
            "cover_image_url": None,
            "default_example": None,
            "latest_version": model.latest.to_json(iso(model.latest.created_at)),
        }

    async def list_versions(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions, newest first."""
        owner, name = self._existing(request, described=True)
        model = self.state.model(owner, name)
        results = [v.to_json(iso(v.created_at)) for v in reversed(model.versions)]
        return JSONResponse({"next": None, "previous": None, "results": results})

    async def get_version(self, request: Request) -> Response:
        """GET /v1/models/{owner}/{name}/versions/{id}."""
        owner, name = self._existing(request, described=True)
        version = self.state.version(owner, name, request.path_params["version_id"])
        if version is None:
            raise not_found(f"Version {request.path_params['version_id']} not found.")
        return JSONResponse(version.to_json(iso(version.created_at)))


def model_description(model: str) -> str:
    """How the sandbox answers for this model."""
    if model_kind(model) == "language":
        return "returns a token list made from the prompt"
    return "returns PNG images made from the input"


def _timestamp(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{name} must be an ISO 8601 date-time, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        text = base64.urlsafe_b64decode(value.encode()).decode()
        if not text.startswith("s="):
            raise ValueError(text)
        return int(text[2:])
    except (ValueError, binascii.Error):
        raise bad_request(f"cursor {value!r} is not one this server gave out") from None
