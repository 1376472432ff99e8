"""The sandbox as one ASGI app: faults, authentication and statistics around Starlette routing.

`create_app(config)` serves the /v1 API (`api.py`, `files.py`), output files under /delivery
and the control endpoints under /_sandbox (`admin.py`). It runs under uvicorn (`server.py`) or
in process with `httpx.ASGITransport(app=create_app(config))`.

Every /v1 request goes through, in order: a reset roll (the connection is dropped unanswered),
an error roll (an HTML 5xx, like a proxy's), `response_delay`, the token check (401), then its
handler. Delivery and control routes take neither faults nor tokens.
"""

from __future__ import annotations

import http
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Match, Route

from batchrun.sandbox.admin import Admin
from batchrun.sandbox.config import SandboxConfig
from batchrun.sandbox.faults import Message, Receive, Send, drop_connection
from batchrun.sandbox.files import Files
from batchrun.sandbox.problems import Problem, not_found
from batchrun.sandbox.routes import DROP_CONNECTION, V1Routes
from batchrun.sandbox.store import SandboxState

# Every answer carries this header (unless `announce` is off), on every route and fault page:
# it is how batchrun tells the sandbox from a real API reached by `--base-url`, so that nothing
# the sandbox made counts as a real model's result. batchrun's client names the same header
# (batchrun.api.client.SANDBOX_HEADER; the sandbox imports nothing of batchrun, and a test
# checks the two agree).
SANDBOX_HEADER = "X-Batchrun-Sandbox"

_ANNOUNCED = SANDBOX_HEADER.lower().encode()

_PROXY_PAGE = (
    "<html>\r\n<head><title>{code} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{code} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)


def create_app(config: SandboxConfig | SandboxState | None = None) -> SandboxApp:
    """A sandbox app with fresh state (or over the given state)."""
    state = config if isinstance(config, SandboxState) else SandboxState(config)
    return SandboxApp(state)


def problem_response(problem: Problem) -> JSONResponse:
    """A problem as Replicate sends it: application/problem+json."""
    return JSONResponse(
        problem.to_json(),
        status_code=problem.status,
        headers=problem.headers,
        media_type="application/problem+json",
    )


async def _on_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, Problem)
    return problem_response(error)


async def _on_http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code == 404:
        return problem_response(not_found())
    phrase = http.HTTPStatus(error.status_code).phrase
    return problem_response(Problem(error.status_code, phrase, phrase))


def authentication_problem(headers: Headers, config: SandboxConfig) -> Problem | None:
    """401 unless the request carries `Bearer <token>` (or `Token <token>`) that is accepted."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() not in ("bearer", "token") or not token:
        return Problem(401, "Unauthenticated", "You did not pass an authentication token")
    if config.tokens and token not in config.tokens:
        return Problem(401, "Unauthenticated", "You did not pass a valid authentication token")
    return None


class SandboxApp:
    """The ASGI callable; `state` is its memory (predictions, settings, statistics)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.routes: list[Route] = [
            *V1Routes(state).routes(),
            *Files(state).routes(),
            *Admin(state).routes(),
        ]
        self._router = Starlette(
            routes=self.routes,
            exception_handlers={Problem: _on_problem, HTTPException: _on_http_error},
        )

    def route_name(self, scope: dict[str, Any]) -> str:
        """`METHOD /path/{template}` of the route a request goes to, for the statistics."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return f"{scope['method']} {route.path}"
        return f"{scope['method']} (no route)"

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        route = self.route_name(scope)
        state = self.state
        if scope["path"].startswith("/v1/") and self._roll_reset(scope["method"]):
            state.count("resets")
            state.record(route, "dropped")
            await drop_connection(send, receive)
            return
        answered: list[str] = []

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                if state.config.announce:
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), (_ANNOUNCED, b"1")],
                    }
                # A handler that asked for it gets a dropped connection instead of its answer.
                answered.append("dropped" if scope.get(DROP_CONNECTION) else str(message["status"]))
                # Counted before the answer leaves: a client that has its answer (a test in
                # another thread) must find it in the statistics already.
                state.record(route, answered[0])
            if answered[0] != "dropped":
                await send(message)

        early = await self._before_api(scope) if scope["path"].startswith("/v1/") else None
        if early is not None:
            await early(scope, receive, tracked)
        else:
            await self._router(scope, receive, tracked)
        if not answered:
            state.record(route, "none")
        if answered and answered[0] == "dropped":
            await drop_connection(send, receive)

    def _roll_reset(self, method: str) -> bool:
        config = self.state.config
        return method in config.reset_methods and self.state.faults.roll("reset", config.reset_rate)

    async def _before_api(self, scope: dict[str, Any]) -> Response | None:
        """A proxy's error page or a 401 for a /v1 request, or None to let its handler answer."""
        state = self.state
        config = state.config
        if scope["method"] in config.error_methods and state.faults.roll(
            "error", config.error_rate
        ):
            code = config.error_status
            page = _PROXY_PAGE.format(code=code, phrase=http.HTTPStatus(code).phrase)
            return HTMLResponse(page, status_code=code)
        if config.response_delay > 0:
            await anyio.sleep(config.response_delay)
        problem = authentication_problem(Headers(scope=scope), config)
        return problem_response(problem) if problem is not None else None
