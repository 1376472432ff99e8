"""An API scripted over httpx.MockTransport: answers as Replicate (and the proxy) sends them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from leaks import TOKEN

from batchrun.api.client import Client
from batchrun.api.ratelimit import RateLimiter
from batchrun.api.retry import RetryPolicy
from batchrun.spec.target import Target

FAST = RetryPolicy(attempts=4, backoff_base=0.001, backoff_cap=0.002, rate_limit_budget=0.05)


VERSION = "2a6b576af31790b470f0a8442e1e9791213fa13799cbb65a9fc1436e96389574"


FLUX = Target("model", "black-forest-labs", "flux-schnell")


LORA = Target("version", "lucataco", "flux-schnell-lora", VERSION)


BARE = Target("version", version=VERSION)


DEPLOYMENT = Target("deployment", "acme", "my-flux")


Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


def prediction(ident: str = "p1", status: str = "starting", **extra: Any) -> dict[str, Any]:
    """A prediction as Replicate (and the proxy) sends it, with `urls` on api.replicate.com."""
    api = f"https://api.replicate.com/v1/predictions/{ident}"
    return {
        "id": ident,
        "model": "black-forest-labs/flux-schnell",
        "version": "dp-4d0bcc010b3049749a251855f12800be",
        "input": {"prompt": "a fox"},
        "logs": "",
        "output": None,
        "data_removed": False,
        "error": None,
        "status": status,
        "created_at": "2025-01-15T09:54:55.566Z",
        "urls": {
            "cancel": f"{api}/cancel",
            "get": api,
            "web": f"https://replicate.com/p/{ident}",
        },
        **extra,
    }


class Script:
    """A MockTransport handler that answers from a list (the last answer repeats) and records."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            # A fresh copy each time: a response object belongs to one request.
            return httpx.Response(
                answer.status_code, headers=answer.headers, content=answer.content
            )
        return answer(request)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.requests]

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)


def make_client(script: Script, base: str = "https://api.test", **options: Any) -> Client:
    options.setdefault("retry", FAST)
    options.setdefault("create_limiter", RateLimiter(10_000))
    options.setdefault("request_limiter", RateLimiter(10_000))
    return Client(base, TOKEN, transport=httpx.MockTransport(script), **options)


def ok(body: Any = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=prediction() if body is None else body)


def problem(status: int, title: str, detail: str, **extra: Any) -> httpx.Response:
    body = {"title": title, "detail": detail, "status": status, **extra}
    return httpx.Response(
        status, content=json.dumps(body), headers={"Content-Type": "application/problem+json"}
    )


def page(ids: list[str], following: str | None) -> httpx.Response:
    results = [prediction(i, "succeeded") for i in ids]
    return httpx.Response(200, json={"results": results, "next": following, "previous": None})
