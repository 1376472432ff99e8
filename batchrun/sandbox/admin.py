"""Control endpoints under /_sandbox/ (no token) for tests and benchmarks in another process.

GET  /_sandbox/stats                       requests, answers, faults, downloads, statuses
GET  /_sandbox/config                      the current settings
POST /_sandbox/config                      a partial settings change: {"error_rate": 0.2}
POST /_sandbox/models/{owner}/{name}/bump  a new latest version: {"model", "version"}
POST /_sandbox/reset                       forget predictions, models, files and stats
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from batchrun.errors import UsageError
from batchrun.sandbox.problems import bad_request
from batchrun.sandbox.routes import json_body, model_name
from batchrun.sandbox.store import SandboxState


class Admin:
    """The control handlers over one state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The /_sandbox routes."""
        return [
            Route("/_sandbox/stats", self.stats, methods=["GET"]),
            Route("/_sandbox/config", self.get_config, methods=["GET"]),
            Route("/_sandbox/config", self.set_config, methods=["POST"]),
            Route("/_sandbox/models/{owner}/{name}/bump", self.bump, methods=["POST"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
        ]

    async def stats(self, request: Request) -> Response:
        """What the sandbox saw and answered."""
        return JSONResponse(self.state.snapshot())

    async def get_config(self, request: Request) -> Response:
        """The current settings."""
        return JSONResponse(self.state.config.to_json())

    async def set_config(self, request: Request) -> Response:
        """Apply a partial change; 400 names the setting that cannot work."""
        changes = await json_body(request)
        try:
            config = self.state.configure(**changes)
        except UsageError as error:
            raise bad_request(str(error)) from None
        return JSONResponse(config.to_json())

    async def bump(self, request: Request) -> Response:
        """Give a model a new latest version."""
        owner, name = model_name(request)
        version = self.state.bump_version(owner, name)
        return JSONResponse({"model": f"{owner}/{name}", "version": version})

    async def reset(self, request: Request) -> Response:
        """Forget everything but the settings."""
        self.state.reset()
        return JSONResponse({"reset": True})
