"""Files: the Files API under /v1/files, and output files served under /delivery.

Output files need no token (like replicate.delivery); the statistics count how many requests
for them carried an Authorization header anyway, so tests can prove a client keeps its token to
the API's origin. They expire `file_ttl` seconds after the prediction completed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from batchrun.sandbox import multipart, outputs
from batchrun.sandbox.inputs import InvalidField
from batchrun.sandbox.predictions import iso
from batchrun.sandbox.problems import Problem, bad_request, invalid_input, not_found
from batchrun.sandbox.routes import bounded_body, origins
from batchrun.sandbox.store import SandboxState, UploadedFile

_CHUNK = 16 * 1024

# Bytes a multipart upload may carry beyond its file: boundaries, part headers, a filename and
# metadata; far more than they need, far less than a file.
_MULTIPART_ROOM = 64 * 1024


class Files:
    """The file handlers over one state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The /v1/files routes and the output file route."""
        return [
            Route("/v1/files", self.create, methods=["POST"]),
            Route("/v1/files", self.list, methods=["GET"]),
            Route("/v1/files/{file_id}", self.get, methods=["GET"]),
            Route("/v1/files/{file_id}", self.delete, methods=["DELETE"]),
            Route("/v1/files/{file_id}/download", self.download, methods=["GET"]),
            Route("/delivery/{prediction_id}/{name}", self.deliver, methods=["GET"]),
        ]

    def _to_json(self, request: Request, item: UploadedFile) -> dict[str, Any]:
        api = origins(request, self.state).api
        return {
            "id": item.id,
            "name": item.name,
            "content_type": item.content_type,
            "size": len(item.data),
            "etag": item.sha256[:32],
            "checksums": {"sha256": item.sha256},
            "metadata": item.metadata,
            "created_at": iso(item.created_at),
            "expires_at": iso(item.expires_at),
            "urls": {"get": f"{api}/v1/files/{item.id}"},
        }

    async def create(self, request: Request) -> Response:
        """POST /v1/files: multipart with `content`, optional `filename`, `type`, `metadata`."""
        limit = self.state.config.max_upload_bytes
        boundary = multipart.boundary_of(request.headers.get("content-type", ""))
        if boundary is None:
            raise bad_request("POST /v1/files takes multipart/form-data")
        # The parts around `content` (boundaries, names, metadata) get a little room of their own.
        body = await bounded_body(request, limit + _MULTIPART_ROOM, _too_large(limit))
        try:
            parts = {part.name: part for part in multipart.parse(body, boundary)}
        except ValueError as error:
            raise bad_request(f"The multipart body cannot be read: {error}") from None
        content = parts.get("content")
        if content is None:
            raise invalid_input([InvalidField("content", "required", "content is required")])
        if len(content.data) > limit:
            raise _too_large(limit)
        name = _text(parts, "filename") or content.filename or "file"
        kind = _text(parts, "type") or content.content_type or "application/octet-stream"
        item = self.state.add_file(name, kind, content.data, _metadata(parts))
        return JSONResponse(self._to_json(request, item), status_code=201)

    async def list(self, request: Request) -> Response:
        """GET /v1/files, newest first."""
        items = sorted(self.state.files.values(), key=lambda f: f.created_at, reverse=True)
        results = [self._to_json(request, f) for f in items if self.state.file(f.id)]
        return JSONResponse({"next": None, "previous": None, "results": results})

    def _file(self, request: Request) -> UploadedFile:
        item = self.state.file(request.path_params["file_id"])
        if item is None:
            raise not_found("File not found")
        return item

    async def get(self, request: Request) -> Response:
        """GET /v1/files/{id}."""
        return JSONResponse(self._to_json(request, self._file(request)))

    async def delete(self, request: Request) -> Response:
        """DELETE /v1/files/{id}."""
        if not self.state.delete_file(request.path_params["file_id"]):
            raise not_found("File not found")
        return Response(status_code=204)

    async def download(self, request: Request) -> Response:
        """GET /v1/files/{id}/download: the bytes (the token is checked like any /v1 call)."""
        item = self._file(request)
        self.state.count("file_downloads")
        return Response(item.data, media_type=item.content_type)

    async def deliver(self, request: Request) -> Response:
        """GET /delivery/{id}/{name}: an output file, until it expires; no token needed."""
        state = self.state
        state.count("delivery_requests")
        if "authorization" in request.headers:
            state.count("delivery_authorized")
        prediction = state.get(request.path_params["prediction_id"])
        name = request.path_params["name"]
        now = state.clock()
        if (
            prediction is None
            or prediction.status_at(now) != "succeeded"
            or name not in prediction.file_names()
        ):
            return PlainTextResponse("Not Found", status_code=404)
        config = state.config
        if now >= prediction.ended_at + config.file_ttl:
            state.count("expired_downloads")
            return PlainTextResponse("Not Found", status_code=config.expired_status)
        width, height = outputs.image_size(prediction.input, config.max_image_side)
        seed = outputs.image_seed(prediction.digest, name)
        png = state.images.get(seed, width, height)
        state.count("downloads")
        state.count("download_bytes", len(png))
        speed = config.download_bytes_per_second
        headers = {"Cache-Control": "private, max-age=3600"}
        if speed is None:
            return Response(png, media_type="image/png", headers=headers)
        headers["Content-Length"] = str(len(png))
        return StreamingResponse(_trickle(png, speed), media_type="image/png", headers=headers)


async def _trickle(data: bytes, bytes_per_second: float) -> AsyncIterator[bytes]:
    chunk = max(1, min(_CHUNK, int(bytes_per_second / 10) or 1))
    for start in range(0, len(data), chunk):
        piece = data[start : start + chunk]
        yield piece
        await anyio.sleep(len(piece) / bytes_per_second)


def _too_large(limit: int) -> Problem:
    megabytes, rest = divmod(limit, 1024 * 1024)
    size = f"{megabytes}MB" if megabytes and not rest else f"{limit} bytes"
    return Problem(413, "Content Too Large", f"Files must be less than {size} in size")


def _text(parts: dict[str, multipart.Part], name: str) -> str | None:
    part = parts.get(name)
    return part.data.decode("utf-8", "replace") if part is not None and part.data else None


def _metadata(parts: dict[str, multipart.Part]) -> dict[str, Any]:
    text = _text(parts, "metadata")
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise invalid_input(
            [InvalidField("metadata", "invalid_type", "metadata must be a JSON object")]
        )
    return value
