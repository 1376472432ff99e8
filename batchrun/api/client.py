"""The only module that speaks HTTP to Replicate (or a Replicate-compatible proxy).

Two `httpx.AsyncClient`s: one for the API, with the token, and one without credentials for output
files (see `batchrun.api.download`). Every request goes through `batchrun.api.retry.with_retries`
with the matching rate limiter (creates, or everything else), and every failure leaves here as a
`batchrun.errors` exception built by `batchrun.api.failures`; no httpx exception escapes. The one
other exception is the limiters' own `Withdrawn`: a request whose turn was withdrawn was never sent.

Creates are the one non-idempotent call: a create that may have reached the server is never
repeated here. It raises `OutcomeUnknownError` and the runner reconciles with the list endpoint.

The API's answers are not trusted (docs/SECURITY.md): each is read up to MAX_ANSWER_BYTES after
decoding, within CALL_DEADLINE, nested at most MAX_JSON_DEPTH deep; the list is followed for
MAX_LIST_PAGES. An answer is kept as it came (an id or a URL is used as the server wrote it): the
token a server echoes is redacted where batchrun writes or shows text (`errors.Redactor`), and a
prediction whose id holds the token is refused, since that id would be stored redacted.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx

from batchrun._version import __version__
from batchrun.api.download import FileFetcher, origin_of, refused_address
from batchrun.api.endpoint import normalize_base_url
from batchrun.api.failures import (
    bad_body_error,
    error_for_response,
    error_for_transport,
    token_source,
)
from batchrun.api.objects import (
    Deployment,
    Downloaded,
    Model,
    ModelVersion,
    Prediction,
    UploadedFile,
)
from batchrun.api.pool import async_client
from batchrun.api.ratelimit import RateLimiter, polite
from batchrun.api.retry import Retryable, RetryPolicy, with_retries
from batchrun.api.stats import ClientStats
from batchrun.errors import (
    BatchrunError,
    InvalidRequestError,
    NotFoundError,
    OutcomeUnknownError,
    RateLimitedError,
    ServerError,
    StorageError,
    UsageError,
    refresh_secrets,
    remember_secret,
)
from batchrun.spec.rate import DEFAULT_RATE, DEFAULT_REQUESTS, Rate
from batchrun.spec.target import Target

# What tests and the sandbox hand the client instead of a socket; callers need not import httpx.
Transport = httpx.AsyncBaseTransport

_CANCEL_AFTER = re.compile(r"\d+|(?=\d)(\d+h)?(\d+m)?(\d+s)?")
_JSON = {"Content-Type": "application/json"}
# The header batchrun's sandbox puts on every answer (batchrun/sandbox/app.py names it too: the
# sandbox imports nothing of batchrun; tests/sandbox/test_sandbox_app.py checks the two agree).
SANDBOX_HEADER = "X-Batchrun-Sandbox"
FIRST_CONTACT_TRIES = 3  # connection attempts per request before the API has ever answered
# A proxy without the list endpoint answers one of these; the runner then creates again.
_NO_LIST = frozenset({404, 405, 501})
T = TypeVar("T")
# Decoded bytes of one API answer. A prediction is a few KB; one whose output holds data URIs
# of several large files reaches megabytes. Far past that is a hostile or broken server (an
# endless body, or a small gzip body that inflates to gigabytes), not an answer.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
# Nesting of arrays and objects in an answer. Replicate's objects nest a handful of levels
# (outputs of outputs, perhaps ten); Python's recursion stops near a thousand, in json itself or
# in the code that walks an output.
MAX_JSON_DEPTH = 64
# Seconds one attempt of one call may take in all, on top of `Prefer: wait`: a body dripped a
# byte at a time never trips the per-read timeout, so the whole exchange has a deadline too.
CALL_DEADLINE = 120.0
# Pages of the list endpoint read while reconciling (100 predictions a page on Replicate, so
# 20,000 predictions back from `created_after`): a server that hands out endless fresh `next`
# links is not an answer that ends.
MAX_LIST_PAGES = 200


class Client:
    """An async client for the prediction, model and file endpoints batchrun uses."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        wait: int | None = 60,
        max_connections: int = 100,
        create_limiter: RateLimiter | None = None,
        request_limiter: RateLimiter | None = None,
        transport: Transport | None = None,
        file_transport: Transport | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        token_env: str | None = "REPLICATE_API_TOKEN",
        on_retry: Callable[[BatchrunError, bool], None] | None = None,
    ) -> None:
        token = token.strip()
        if not token.isascii() or not token.isprintable():
            raise UsageError(
                f"the API token {token_source(token_env)} has characters a header cannot carry"
            )
        self.base_url = normalize_base_url(base_url)
        self._api = self.base_url + "/v1"
        self._api_url = httpx.URL(self._api)
        self._wait = _checked_wait(wait)
        self._secrets = (token,) if token else ()
        remember_secret(token)  # every sink redacts it, whatever variable it came from
        # The secrets the sinks will redact (the environment's `*_TOKEN`s too), for `_parse`.
        self._redactor = refresh_secrets()
        self._token_env = token_env
        self._retry = retry or RetryPolicy()
        # Told of every failure about to be retried, and whether it was a 429 (progress display).
        self._on_retry = on_retry
        # Until the API first answers, a refused connection is a wrong URL or a dead network
        # far more often than a blip: say so in about a second, not after minutes of backoff.
        self._answered = False
        # Without limiters of its own (`lock`), the spec format's default rates apply.
        self.create_limiter = create_limiter or polite(Rate.parse(DEFAULT_RATE).per_second)
        self.request_limiter = request_limiter or polite(Rate.parse(DEFAULT_REQUESTS).per_second)
        self.stats = ClientStats()
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        # No pool timeout: waiting for a free connection is the limiters' job, not an error.
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout, pool=None)
        self._create_timeouts: dict[int, httpx.Timeout] = {}
        # Loading the CA bundle takes ~100 ms: both clients verify with one context, made at
        # the first TLS connection (a no-op run, or one on plain HTTP, never makes it).
        verify = functools.cache(httpx.create_ssl_context)
        user_agent = {"User-Agent": f"batchrun/{__version__}"}
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = async_client(
            headers={**user_agent, **auth, "Accept": "application/json"},
            timeout=self._timeout,
            max_connections=max_connections,
            transport=transport,
            verify=verify,
        )
        # Output files are fetched without credentials; FileFetcher adds them per hop, if ever.
        self._file_http = async_client(
            headers=user_agent,
            timeout=self._timeout,
            max_connections=max_connections,
            transport=file_transport,
            verify=verify,
            refuse=refused_address,
        )
        self._files = FileFetcher(
            self._file_http,
            api_origin=origin_of(self._api_url),
            auth_headers=auth,
            secrets=self._secrets,
            policy=self._retry,
            on_retry=self._count_retry,
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close both connection pools."""
        await self._http.aclose()
        await self._file_http.aclose()

    async def create(
        self,
        target: Target,
        input: Mapping[str, Any],
        *,
        wait: int | None = None,
        cancel_after: str | None = None,
        on_send: Callable[[], None] | None = None,
    ) -> Prediction:
        """Create a prediction; OutcomeUnknownError if it was sent and its answer was lost.

        `Withdrawn` if the create limiter withdrew its turn: then nothing was sent.
        `on_send` is called as each attempt is sent (after its turn came): the prediction is no
        older than the time since the last call.
        """
        if target.kind == "version":
            url = f"{self._api}/predictions"
            body: dict[str, Any] = {"version": target.version, "input": input}
        elif target.kind in ("model", "deployment"):
            owner, name = _segment(target.owner), _segment(target.name)
            url = f"{self._api}/{target.kind}s/{owner}/{name}/predictions"
            body = {"input": input}
        else:
            raise UsageError(f"cannot create a prediction for a target of kind {target.kind!r}")
        try:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            # ValueError is NaN or infinity, whose wording differs between Python versions.
            why = str(exc) if isinstance(exc, TypeError) else "it holds NaN or infinity"
            raise InvalidRequestError(f"POST {url}: the input is not valid JSON: {why}") from None
        seconds = self._wait if wait is None else _checked_wait(wait)
        headers = dict(_JSON)
        if seconds:
            headers["Prefer"] = f"wait={seconds}"
        if cancel_after is not None:
            if not _CANCEL_AFTER.fullmatch(cancel_after):
                raise UsageError(
                    f"Cancel-After must look like 30s, 5m or 1h30m, got {cancel_after!r}"
                )
            headers["Cancel-After"] = cancel_after
        data = await self._send(
            "POST",
            url,
            counter="creates",
            limiter=self.create_limiter,
            created=True,
            on_send=on_send,
            content=content.encode(),
            headers=headers,
            timeout=self._create_timeout(seconds),
        )
        return self._parse(Prediction.from_json, data, "POST", url)

    async def get(self, prediction_id: str) -> Prediction:
        """The prediction's current state, from {base}/v1/predictions/{id} (never `urls.get`)."""
        url = f"{self._api}/predictions/{_segment(prediction_id)}"
        data = await self._send("GET", url, counter="gets")
        return self._parse(Prediction.from_json, data, "GET", url)

    async def cancel(self, prediction_id: str) -> Prediction:
        """Ask the API to cancel a prediction; returns its state after the request."""
        url = f"{self._api}/predictions/{_segment(prediction_id)}/cancel"
        data = await self._send("POST", url, counter="cancels")
        return self._parse(Prediction.from_json, data, "POST", url)

    async def list_predictions(
        self, *, created_after: str | None = None
    ) -> AsyncIterator[Prediction]:
        """Every prediction the token can see (newest first), following the API's `next` links.

        NotFoundError when the API has no list endpoint (a proxy may not offer one).
        """
        first = httpx.URL(f"{self._api}/predictions")
        url = first.copy_merge_params({"created_after": created_after}) if created_after else first
        seen: set[str] = set()
        while str(url) not in seen:
            if len(seen) >= MAX_LIST_PAGES:
                raise bad_body_error(
                    "GET",
                    str(url),
                    200,
                    f"the list goes on past {MAX_LIST_PAGES} pages",
                    self._secrets,
                )
            seen.add(str(url))
            data = await self._send("GET", str(url), counter="lists", missing=_NO_LIST)
            results = data.get("results") if isinstance(data, dict) else None
            if not isinstance(results, list):
                raise bad_body_error("GET", str(url), 200, "no `results` list", self._secrets)
            for item in results:
                yield self._parse(Prediction.from_json, item, "GET", str(url))
            following = data.get("next")
            if not isinstance(following, str) or not following:
                return
            url = self._next_page(url.join(following), first)

    async def get_model(self, owner: str, name: str) -> Model:
        """A model and its latest version."""
        url = f"{self._api}/models/{_segment(owner)}/{_segment(name)}"
        data = await self._send("GET", url, counter="models")
        return self._parse(Model.from_json, data, "GET", url)

    async def get_version(self, owner: str, name: str, version_id: str) -> ModelVersion:
        """One version of a model, with its Cog schema."""
        owner, name = _segment(owner), _segment(name)
        url = f"{self._api}/models/{owner}/{name}/versions/{_segment(version_id)}"
        data = await self._send("GET", url, counter="models")
        return self._parse(ModelVersion.from_json, data, "GET", url)

    async def get_deployment(self, owner: str, name: str) -> Deployment:
        """A deployment and what its current release runs."""
        url = f"{self._api}/deployments/{_segment(owner)}/{_segment(name)}"
        data = await self._send("GET", url, counter="models")
        return self._parse(Deployment.from_json, data, "GET", url)

    async def has_endpoint(self, collection: str) -> bool:
        """Whether the API lists `collection` (`models`, `deployments`) at all: a 404 for one
        model means "no such model" only from an API that has the endpoint."""
        url = f"{self._api}/{_segment(collection)}"
        try:
            await self._send("GET", url, counter="models", missing=_NO_LIST)
        except NotFoundError:
            return False
        return True

    async def is_sandbox(self) -> bool:
        """Whether this API is batchrun's sandbox: one GET /v1/account, whose answer (any
        status: a 401 or 404 says it as well) carries the sandbox's marker header or not.

        Network failures are retried as any request's; an API that never answers is taken for
        a real one (its results would never count as the sandbox's), and the run's own
        requests then say what is wrong with it.
        """
        url = f"{self._api}/account"
        refused = 0

        async def attempt() -> bool:
            nonlocal refused
            try:
                response = await self._exchange("GET", url, {"timeout": self._timeout})
            except httpx.HTTPError as exc:
                error = error_for_transport("GET", url, exc, secrets=self._secrets, created=False)
                if isinstance(exc, httpx.ConnectError) and not self._answered:
                    refused += 1
                    if refused >= FIRST_CONTACT_TRIES:
                        raise error from None
                raise Retryable(error) from None
            self._answered = True
            return SANDBOX_HEADER in response.headers

        try:
            return await with_retries(attempt, self._retry, limiter=self.request_limiter)
        except BatchrunError:
            return False

    async def upload(
        self, content: bytes | Path, *, filename: str, content_type: str
    ) -> UploadedFile:
        """Store a file with the Files API (multipart field `content`); its URL goes in inputs."""
        if isinstance(content, Path):
            path = content
            try:
                content = await anyio.Path(path).read_bytes()
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from None
        url = f"{self._api}/files"
        data = await self._send(
            "POST",
            url,
            counter="uploads",
            # A large file takes as long as it takes to send; only silence is a timeout.
            timeout=httpx.Timeout(
                self._read_timeout, connect=self._connect_timeout, write=None, pool=None
            ),
            files={"content": (filename, content, content_type)},
            data={"filename": filename, "type": content_type},
        )
        return self._parse(UploadedFile.from_json, data, "POST", url)

    async def download(
        self, url: str, dest: Path | str, *, max_bytes: int | None = None, root: Path | None = None
    ) -> Downloaded:
        """Stream an output file into `dest` atomically; the token goes only to the API origin.

        `root`: the folder `dest` must stay inside (the run folder), links followed.
        """
        self.stats.downloads += 1
        return await self._files.fetch(url, dest, max_bytes=max_bytes, root=root)

    async def _send(
        self,
        method: str,
        url: str,
        *,
        counter: str,
        limiter: RateLimiter | None = None,
        created: bool = False,
        missing: frozenset[int] = frozenset(),
        on_send: Callable[[], None] | None = None,
        **request: Any,
    ) -> Any:
        """One API call through the retry loop; returns the decoded JSON of its 2xx answer."""
        stats = self.stats
        refused = 0

        async def attempt() -> Any:
            nonlocal refused
            setattr(stats, counter, getattr(stats, counter) + 1)
            if on_send is not None:
                on_send()
            try:
                response = await self._exchange(method, url, request)
            except httpx.HTTPError as exc:
                stats.network_errors += 1
                error = error_for_transport(
                    method, url, exc, secrets=self._secrets, created=created
                )
                if isinstance(error, OutcomeUnknownError):
                    raise error from None
                if isinstance(exc, httpx.ConnectError) and not self._answered:
                    refused += 1
                    if refused >= FIRST_CONTACT_TRIES:
                        raise error from None
                raise Retryable(error) from None
            self._answered = True
            status = response.status_code
            if 200 <= status < 300:
                try:
                    return _checked_depth(json.loads(response.content))
                except (ValueError, RecursionError) as exc:
                    kind = _content_kind(response) if isinstance(exc, ValueError) else ""
                    error = bad_body_error(method, url, status, kind or _TOO_DEEP, self._secrets)
                    if method != "GET":
                        raise error from None
                    # An answer cut short or swapped for a proxy's page: asking again is
                    # harmless. (A create's garbled answer is not retried: it may have
                    # created a prediction; the next run finds it.)
                    stats.server_errors += 1
                    raise Retryable(error) from None
            error = error_for_response(
                method,
                url,
                response,
                secrets=self._secrets,
                token_env=self._token_env,
                created=created,
            )
            if status in missing:
                raise NotFoundError(
                    f"{str(error).rstrip('.')}; this API has no such endpoint",
                    method=method,
                    url=error.url,
                    status=status,
                    detail=error.detail,
                ) from None
            if isinstance(error, RateLimitedError):
                stats.rate_limited += 1
                raise Retryable(error)
            if status >= 500:
                stats.server_errors += 1
                # A create's 5xx is an OutcomeUnknownError, which is not a ServerError.
                if isinstance(error, ServerError):
                    raise Retryable(error)
            raise error

        if "timeout" not in request:
            request["timeout"] = self._timeout
        return await with_retries(
            attempt,
            self._retry,
            limiter=limiter or self.request_limiter,
            on_retry=self._count_retry,
        )

    async def _exchange(self, method: str, url: str, request: dict[str, Any]) -> httpx.Response:
        """Send one request; its answer read whole, within the limits, the token redacted."""
        timeout = request.get("timeout")
        read = timeout.read if isinstance(timeout, httpx.Timeout) else None
        outcome = httpx.Request(method, url)  # named in a timeout; replaced by the real one
        with anyio.move_on_after(CALL_DEADLINE + (read or 0)) as deadline:
            outgoing = self._http.build_request(method, url, **request)
            outcome = outgoing
            response = await self._http.send(outgoing, stream=True)
            try:
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():  # decoded: the size that counts
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        response = self._cut(response, outgoing, status=response.status_code)
                        break
                    chunks.append(chunk)
                else:
                    response = self._answer(response, outgoing, b"".join(chunks))
            finally:
                await response.aclose()
            return response
        assert deadline.cancelled_caught
        raise httpx.ReadTimeout(
            f"the answer took longer than {CALL_DEADLINE + (read or 0):.0f} s in all",
            request=outcome,
        )

    def _answer(
        self, response: httpx.Response, request: httpx.Request, body: bytes
    ) -> httpx.Response:
        headers = [
            (name, value)
            for name, value in response.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=body,
            request=request,
            extensions=response.extensions,
        )

    def _cut(self, response: httpx.Response, request: httpx.Request, status: int) -> httpx.Response:
        # Too large to be an answer: a body that says so, which the error paths then report.
        note = f"the answer is larger than {MAX_ANSWER_BYTES} bytes"
        return httpx.Response(
            502 if 200 <= status < 300 else status,
            headers={"content-type": "text/plain"},
            content=note.encode(),
            request=request,
            extensions=response.extensions,
        )

    def _parse(self, parse: Callable[[Any], T], data: Any, method: str, url: str) -> T:
        try:
            parsed = parse(data)
        except ServerError as exc:
            raise bad_body_error(method, url, 200, str(exc), self._secrets) from None
        for what, ident in _identifiers(parsed):
            if ident is not None and self._redactor.finds_in(ident):
                # Stored (in the manifest, in SPEC.lock), the id would be redacted and name
                # nothing when read back: a server that puts the token in an id is broken,
                # like one that puts `/` there.
                problem = f"the {what} in the response holds the API token"
                raise bad_body_error(method, url, 200, problem, self._secrets)
        return parsed

    def _next_page(self, link: httpx.URL, first: httpx.URL) -> httpx.URL:
        # A proxy hands out api.replicate.com links; only the cursor in them is ours to use.
        if origin_of(link) == origin_of(self._api_url) and link.path.startswith(first.path):
            return link
        return first.copy_with(query=link.query or None)

    def _create_timeout(self, wait: int) -> httpx.Timeout:
        timeout = self._create_timeouts.get(wait)
        if timeout is None:
            # The server holds the answer back for up to `wait` seconds before it speaks.
            timeout = httpx.Timeout(
                self._read_timeout,
                connect=self._connect_timeout,
                read=wait + self._read_timeout,
                pool=None,
            )
            self._create_timeouts[wait] = timeout
        return timeout

    def _count_retry(self, retry: Retryable) -> None:
        self.stats.retries += 1
        if self._on_retry is not None:
            self._on_retry(retry.error, retry.rate_limited)


def _identifiers(parsed: object) -> list[tuple[str, str | None]]:
    """The ids in a parsed answer that batchrun acts on and stores, each with its name."""
    if isinstance(parsed, Prediction):
        return [("prediction id", parsed.id), ("prediction's version", parsed.version)]
    if isinstance(parsed, Model):
        return [("model's latest version", parsed.latest_version)]
    if isinstance(parsed, ModelVersion):
        return [("version id", parsed.id)]
    if isinstance(parsed, Deployment):
        return [("deployment's version", parsed.version)]
    return []


def _checked_wait(wait: int | None) -> int:
    if wait is None or wait == 0:
        return 0
    if not 1 <= wait <= 60:
        raise UsageError(f"Prefer: wait must be between 1 and 60 seconds, got {wait}")
    return wait


def _segment(value: str) -> str:
    if not value:
        raise UsageError("an empty name or id cannot be part of an API path")
    return quote(value, safe="")


_TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"


def _checked_depth(data: Any) -> Any:
    """`data`, unless its arrays and objects nest deeper than MAX_JSON_DEPTH (RecursionError)."""
    if not isinstance(data, dict | list):
        return data
    # A loop, not recursion: the point is to stop what recursion cannot survive.
    level: list[Any] = [data]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return data
    raise RecursionError(_TOO_DEEP)


def _content_kind(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "no content type")
    return f"expected JSON, got {len(response.content)} bytes of {kind}"
