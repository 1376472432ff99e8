"""Turn HTTP failures into batchrun's errors, with one readable line each.

Every message starts with the method and URL, then says what the server said: a problem+json
body's `title`, `detail` and `invalid_fields`, or for anything else (a proxy's HTML 502 page) its
`<title>` or first line, truncated. Text that came from elsewhere passes through `redact`, so the
token cannot reach a message even when a server or httpx echoes it back.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any

import httpx

from batchrun.api.retry import parse_retry_after
from batchrun.errors import (
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    redact,
)

MAX_DETAIL = 300
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")

# Raised before a single byte of the request left this machine: nothing can have happened.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def one_line(text: str, limit: int = MAX_DETAIL) -> str:
    """Collapse whitespace and cut `text` to `limit` characters, marking the cut."""
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def parse_body(response: httpx.Response) -> Any:
    """The response's JSON, or None when it is not JSON."""
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _invalid_fields(body: dict[str, Any]) -> list[tuple[str, str]]:
    fields = body.get("invalid_fields")
    found: list[tuple[str, str]] = []
    if isinstance(fields, list):
        for item in fields:
            if isinstance(item, dict) and isinstance(item.get("field"), str):
                description = item.get("description")
                found.append((item["field"], description if isinstance(description, str) else ""))
    return found


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _problem_text(body: dict[str, Any], fields: Sequence[tuple[str, str]]) -> str:
    title = _string(body, "title")
    if fields:
        detail = "; ".join(f"{name}: {text}" if text else name for name, text in fields)
    else:
        raw = _string(body, "detail") or _string(body, "error")
        # Replicate writes validation details as a bulleted list, one problem per line.
        lines = [line.strip().removeprefix("- ").strip() for line in raw.splitlines()]
        detail = "; ".join(line for line in lines if line)
    if title and detail:
        # "Not found" / "Not found." says it once; so does a detail that repeats its title.
        if detail.lower().startswith(title.rstrip(".").lower()):
            return detail
        return f"{title}: {detail}"
    return title or detail


def _text_summary(response: httpx.Response) -> str:
    text = response.content[:65536].decode("utf-8", errors="replace")
    match = _TITLE.search(text)
    if match:
        return html.unescape(_TAG.sub("", match.group(1)))
    if "<" in text and ">" in text:
        text = _TAG.sub(" ", text)
    for line in text.splitlines():
        if line.strip():
            return html.unescape(line)
    return ""


def describe(
    response: httpx.Response, body: Any, secrets: Sequence[str]
) -> tuple[str, list[tuple[str, str]]]:
    """What the server said about an error response, as one redacted line, and its fields."""
    fields: list[tuple[str, str]] = []
    if isinstance(body, dict):
        fields = _invalid_fields(body)
        said = _problem_text(body, fields)
    else:
        said = _text_summary(response)
    # Redact before cutting, so a cut cannot leave the start of a secret behind.
    said = one_line(redact(said, secrets))
    status = str(response.status_code)
    if said.startswith(status):
        said = said[len(status) :].strip(" :-")
    return said or response.reason_phrase or "", fields


def error_for_response(
    method: str,
    url: str,
    response: httpx.Response,
    *,
    secrets: Sequence[str],
    token_env: str | None = "REPLICATE_API_TOKEN",
    created: bool = False,
) -> ApiError:
    """The batchrun error an unsuccessful API response stands for.

    `token_env` names the variable the token came from (None: it was handed over directly, as
    the Python API's `token=`), for a refusal's hint. `created` marks a create request, whose
    5xx may hide a prediction that was made anyway.
    """
    status = response.status_code
    body = parse_body(response)
    said, fields = describe(response, body, secrets)
    url = redact(url, secrets)
    head = f"{method} {url}: {status}"
    message = f"{head} {said}" if said else head
    common: dict[str, Any] = {"method": method, "url": url, "status": status, "detail": said}
    if status in (401, 403):
        hint = f"check the API token {token_source(token_env)}"
        return AuthenticationError(f"{message}; {hint}", **common)
    if status == 404:
        return NotFoundError(message, **common)
    if status in (400, 409, 413, 422):
        return InvalidRequestError(message, invalid_fields=[f for f, _ in fields], **common)
    if status == 429:
        retry_after = parse_retry_after(response.headers, body)
        return RateLimitedError(message, retry_after=retry_after, **common)
    if status >= 500 and created:
        return OutcomeUnknownError(
            f"{message}; the prediction may have been created anyway", **common
        )
    if status >= 500:
        return ServerError(message, **common)
    if 300 <= status < 400:
        where = redact(response.headers.get("location", "?"), secrets)
        return ServerError(f"{head} unexpected redirect to {where}", **common)
    return InvalidRequestError(message, **common)


def token_source(token_env: str | None) -> str:
    """Where the token came from, as a hint names it: `in $NAME`, or the caller's own."""
    return f"in ${token_env}" if token_env else "batchrun was given (token=)"


def transport_reason(exc: httpx.HTTPError, secrets: Sequence[str]) -> str:
    """Why a request got no answer, on one line and without secrets ("Connection refused")."""
    return one_line(redact(str(exc), secrets)) or type(exc).__name__


def error_for_transport(
    method: str, url: str, exc: httpx.HTTPError, *, secrets: Sequence[str], created: bool
) -> ApiError:
    """The batchrun error a request that got no answer stands for."""
    url = redact(url, secrets)
    reason = transport_reason(exc, secrets)
    common: dict[str, Any] = {"method": method, "url": url, "status": None, "detail": reason}
    if created and not isinstance(exc, NOT_SENT):
        return OutcomeUnknownError(
            f"{method} {url}: no answer ({reason}); the prediction may have been created anyway",
            **common,
        )
    if isinstance(exc, httpx.TimeoutException):
        return ApiConnectionError(f"{method} {url}: timed out ({reason})", **common)
    return ApiConnectionError(f"{method} {url}: no answer ({reason})", **common)


def bad_body_error(
    method: str, url: str, status: int, problem: str, secrets: Sequence[str]
) -> ServerError:
    """A 2xx whose body is not what the API promised."""
    url = redact(url, secrets)
    problem = one_line(redact(problem, secrets))
    return ServerError(
        f"{method} {url}: {status} response is not what the API promised: {problem}",
        method=method,
        url=url,
        status=status,
        detail=problem,
    )
