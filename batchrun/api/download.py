"""Streamed downloads of output files: `.part` file, sha256 on the fly, rename into place.

No fsync per file: a killed process leaves what it wrote in the page cache, and the rename makes a
file appear whole or not at all. Only a power cut could leave a renamed file with lost bytes, and
the manifest holds every file's sha256, so the next run finds and fetches it again. An fsync per
file costs a disk flush per prediction and, on ext4, stalls every other file operation meanwhile.

The token goes only to the API's own origin. The HTTP client used here carries no credentials;
redirects are followed by hand, one hop at a time, and each hop gets the Authorization header only
if that hop's URL is on the API origin (scheme, host and port). So a file host never sees the token,
whether it is linked directly or reached by a redirect from the API.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from batchrun.api.failures import describe, transport_reason
from batchrun.api.objects import Downloaded
from batchrun.api.retry import Retryable, RetryPolicy, with_retries
from batchrun.errors import DownloadError, ExpiredURLError, StorageError, redact

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_GONE = (403, 404, 410)
_REDIRECTS = (301, 302, 303, 307, 308)
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def origin_of(url: httpx.URL) -> Origin:
    """(scheme, host, port) with the default port filled in, for same-origin checks."""
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 0)


def _checked_url(text: str, shown: str, base: httpx.URL | None = None) -> httpx.URL:
    try:
        url = base.join(text) if base is not None else httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError):
        url = None
    if url is None or url.scheme not in _DEFAULT_PORTS or not url.host:
        raise DownloadError(
            f"cannot download {shown}: only http and https URLs are supported", url=shown
        )
    return url


class FileFetcher:
    """Downloads files with a credential-free client, adding the token only on the API origin."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_origin: Origin,
        auth_headers: Mapping[str, str],
        secrets: Sequence[str],
        policy: RetryPolicy,
        on_retry: Callable[[Retryable], None] | None = None,
        max_redirects: int = 10,
        chunk_size: int = 1 << 16,
    ) -> None:
        self._http = http
        self._api_origin = api_origin
        self._auth = dict(auth_headers)
        self._secrets = tuple(secrets)
        self._policy = policy
        self._on_retry = on_retry
        self._max_redirects = max_redirects
        self._chunk_size = chunk_size
        self._folders: set[Path] = set()  # folders known to exist: one mkdir per folder, not file

    async def fetch(self, url: str, dest: Path, *, max_bytes: int | None = None) -> Downloaded:
        """Stream `url` into `dest` atomically; retry transient failures from the start."""
        shown = redact(url, self._secrets)
        start = _checked_url(url, shown)
        dest = Path(dest)
        if dest.parent not in self._folders:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _storage_error(exc, dest.parent) from None
            self._folders.add(dest.parent)
        part = dest.with_name(dest.name + ".part")
        try:
            return await with_retries(
                lambda: self._attempt(start, shown, dest, part, max_bytes),
                self._policy,
                on_retry=self._on_retry,
            )
        except BaseException:
            # On success the .part was renamed away; on any failure (or cancellation) it must go.
            part.unlink(missing_ok=True)
            raise

    async def _attempt(
        self, url: httpx.URL, shown: str, dest: Path, part: Path, max_bytes: int | None
    ) -> Downloaded:
        for _ in range(self._max_redirects + 1):
            headers = self._auth if origin_of(url) == self._api_origin else None
            request = self._http.build_request("GET", url, headers=headers)
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                raise Retryable(self._network_error(shown, exc)) from None
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    location = response.headers["location"]
                    url = _checked_url(location, redact(location, self._secrets), base=url)
                    continue
                if not response.is_success:
                    await response.aread()
                    raise self._status_error(shown, response)
                return await self._save(response, shown, dest, part, max_bytes)
            except httpx.TransportError as exc:
                raise Retryable(self._network_error(shown, exc)) from None
            except httpx.DecodingError:  # a body its Content-Encoding does not describe
                raise DownloadError(
                    f"cannot download {shown}: the host sent a body that does not decode",
                    url=shown,
                ) from None
            finally:
                await response.aclose()
        raise DownloadError(
            f"cannot download {shown}: more than {self._max_redirects} redirects", url=shown
        )

    async def _save(
        self, response: httpx.Response, shown: str, dest: Path, part: Path, max_bytes: int | None
    ) -> Downloaded:
        declared = response.headers.get("content-length", "")
        if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
            raise self._too_large(shown, int(declared), max_bytes)
        digest = hashlib.sha256()
        size = 0
        try:
            # Plain writes on the event loop: they land in the page cache and cost microseconds.
            with open(part, "wb") as file:  # noqa: ASYNC230
                async for chunk in response.aiter_bytes(self._chunk_size):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise self._too_large(shown, None, max_bytes)
                    digest.update(chunk)
                    file.write(chunk)
            os.replace(part, dest)
        except OSError as exc:
            raise _storage_error(exc, dest) from None
        return Downloaded(
            path=dest,
            sha256=digest.hexdigest(),
            bytes=size,
            content_type=response.headers.get("content-type"),
        )

    def _status_error(self, shown: str, response: httpx.Response) -> Exception:
        status = response.status_code
        if status in _GONE:
            return ExpiredURLError(f"output URL expired or gone: {status} from {shown}", url=shown)
        said, _ = describe(response, None, self._secrets)
        error = DownloadError(f"cannot download {shown}: {status} {said}".rstrip(), url=shown)
        if status == 429 or status >= 500:
            return Retryable(error)
        return error

    def _network_error(self, shown: str, exc: httpx.TransportError) -> DownloadError:
        reason = transport_reason(exc, self._secrets)
        return DownloadError(f"cannot download {shown}: no answer ({reason})", url=shown)

    @staticmethod
    def _too_large(shown: str, size: int | None, limit: int) -> DownloadError:
        # `size` is None when the host did not declare it and the stream ran past the limit.
        has = f"{size} bytes, more than" if size is not None else "more bytes than"
        return DownloadError(
            f"cannot download {shown}: the file has {has} the limit of {limit}", url=shown
        )


def _storage_error(exc: OSError, path: Path) -> StorageError:
    if exc.errno in _NO_SPACE:
        return StorageError(f"cannot write {path}: the disk is full ({exc.strerror})")
    return StorageError(f"cannot write {path}: {exc.strerror or exc}")
