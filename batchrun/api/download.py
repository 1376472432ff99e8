"""Streamed downloads of output files: `.part` file, sha256 on the fly, rename into place.

No fsync per file: a killed process leaves what it wrote in the page cache, and the rename makes a
file appear whole or not at all. Only a power cut could leave a renamed file with lost bytes, and
the manifest holds every file's sha256, so the next run finds and fetches it again. An fsync per
file costs a disk flush per prediction and, on ext4, stalls every other file operation meanwhile.

The token goes only to the API's own origin. The HTTP client used here carries no credentials;
redirects are followed by hand, one hop at a time, and each hop gets the Authorization header only
if that hop's URL is on the API origin (scheme, host and port) and every hop before it was too.
So a file host never sees the token, whether it is linked directly or reached by a redirect from
the API, and a file host that redirects back into the API origin does not get it either (that
hop's URL was the file host's choice). Userinfo in a URL (`user:pw@`) is dropped before the
request, so no Basic credentials go anywhere.

Output URLs are the API's choice, and so not trusted (docs/SECURITY.md): link-local addresses,
where cloud metadata services answer, are refused (by name and literal here, and by the address
actually connected to in the transport); files are written only inside the run folder, through
`batchrun.safefs`; and a download slower than MIN_DOWNLOAD_RATE stops instead of dripping forever.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import anyio
import httpx

from batchrun import safefs
from batchrun.api.failures import describe, transport_reason
from batchrun.api.http11 import RefusedAddressError
from batchrun.api.objects import Downloaded
from batchrun.api.retry import Retryable, RetryPolicy, with_retries
from batchrun.errors import DownloadError, ExpiredURLError, redact

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {"http": 80, "https": 443}
_GONE = (403, 404, 410)
_REDIRECTS = (301, 302, 303, 307, 308)
# Seconds a download may take before its speed is judged: connecting, TLS and a cold CDN's
# first byte fit well inside; a host that drips its body is stopped after this plus its bytes'
# share at MIN_DOWNLOAD_RATE, not after the per-read timeout of each of endless reads.
DOWNLOAD_GRACE = 30.0
# Bytes per second, averaged over the whole download: far below any real file host (a 10 MB
# image at this rate takes 10 minutes), far above a body sent one byte at a time.
MIN_DOWNLOAD_RATE = 16 * 1024
# Seconds one download may take, retries included, however fast its bytes come: Replicate's
# output URLs expire an hour after the prediction, so a download still going after that is a
# host dripping just above MIN_DOWNLOAD_RATE (a 4 GiB file at that rate takes three days).
DOWNLOAD_DEADLINE = 3600.0
# Folders a fetcher remembers as made (one mkdir per folder, not per file). A template that gives
# each key a folder of its own (`${key}/${index}${ext}`) meets each folder once: remembering all
# of them would keep a path per prediction of the run; the last few are what later files reuse.
FOLDERS_KEPT = 256
# Cloud metadata services answer on link-local addresses, or on these names and addresses:
# an output URL (the API's choice) must never reach them with this machine's network identity.
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "instance-data"})
_METADATA_NETS = tuple(
    ipaddress.ip_network(net)
    for net in ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
)


def refused_address(host: str) -> bool:
    """Whether `host` (a name or an address) is link-local or a cloud metadata service.

    Loopback is allowed: the sandbox and the tests serve files there, and a process on this
    machine can read its own files without batchrun's help.
    """
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host.lower().rstrip(".") in _METADATA_NAMES
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_link_local or any(address in net for net in _METADATA_NETS)


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
    if refused_address(url.host):
        raise DownloadError(
            f"cannot download {shown}: {url.host} is a link-local or cloud metadata address",
            url=shown,
        )
    # No Basic credentials from a URL the API chose: httpx would send them as Authorization.
    return url.copy_with(username=None, password=None) if url.userinfo else url


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
        self._folders: dict[str, None] = {}  # folders known to exist, oldest first

    async def fetch(
        self, url: str, dest: Path | str, *, max_bytes: int | None = None, root: Path | None = None
    ) -> Downloaded:
        """Stream `url` into `dest` atomically; retry transient failures from the start.

        `root` is the folder `dest` must resolve inside (the run folder), links followed.
        """
        shown = redact(url, self._secrets)
        start = _checked_url(url, shown)
        # Paths as text, never a Path per file: pathlib interns every part it parses, and each
        # file's name and its `.part`'s are new, so each download left two dead entries in the
        # interpreter's table of interned strings, which a long run rebuilt again and again
        # (a new table of 1.9 MB beside the old one: the peak of a run's resident set).
        dest = os.fspath(dest)
        folder, name = os.path.split(dest)
        if folder not in self._folders:
            safefs.ensure_folder(folder or ".", root)
            self._folders[folder] = None
            if len(self._folders) > FOLDERS_KEPT:
                del self._folders[next(iter(self._folders))]
        else:
            safefs.check_inside(dest, root)
        # `.NAME.<hex>.part`: a run that was killed leaves one a next run recognises (safefs).
        part = os.path.join(folder, safefs.temporary_name(name, ".part"))
        try:
            # A total deadline over every attempt: a host that keeps just above the minimum
            # rate (or answers each retry slowly) still ends.
            with anyio.CancelScope(deadline=anyio.current_time() + DOWNLOAD_DEADLINE):
                return await with_retries(
                    lambda: self._attempt(start, shown, dest, part, max_bytes, root),
                    self._policy,
                    on_retry=self._on_retry,
                )
            raise DownloadError(  # only reached when the deadline passed
                f"cannot download {shown}: not done after {DOWNLOAD_DEADLINE:.0f} s",
                url=shown,
            )
        except BaseException:
            # On success the .part was renamed away; on any failure (or cancellation) it must go.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(part)
            raise

    async def _attempt(
        self,
        url: httpx.URL,
        shown: str,
        dest: str,
        part: str,
        max_bytes: int | None,
        root: Path | None,
    ) -> Downloaded:
        started = anyio.current_time()
        with anyio.CancelScope(deadline=started + DOWNLOAD_GRACE) as pace:
            return await self._hops(url, shown, dest, part, max_bytes, root, pace)
        raise DownloadError(  # only reached when `pace` ran out
            f"cannot download {shown}: the host sent less than {MIN_DOWNLOAD_RATE // 1024} KiB/s "
            f"(after {DOWNLOAD_GRACE:.0f} s of grace)",
            url=shown,
        )

    async def _hops(
        self,
        url: httpx.URL,
        shown: str,
        dest: str,
        part: str,
        max_bytes: int | None,
        root: Path | None,
        pace: anyio.CancelScope,
    ) -> Downloaded:
        # The token rides only while every hop so far was on the API origin: once a file host
        # chose the next URL, no later hop gets it, wherever that hop is.
        trusted = True
        for _ in range(self._max_redirects + 1):
            trusted = trusted and origin_of(url) == self._api_origin
            request = self._http.build_request("GET", url, headers=self._auth if trusted else None)
            try:
                response = await self._http.send(request, stream=True)
            except RefusedAddressError as exc:
                raise DownloadError(f"cannot download {shown}: {exc}", url=shown) from None
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
                return await self._save(response, shown, dest, part, max_bytes, root, pace)
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
        self,
        response: httpx.Response,
        shown: str,
        dest: str,
        part: str,
        max_bytes: int | None,
        root: Path | None,
        pace: anyio.CancelScope,
    ) -> Downloaded:
        declared = response.headers.get("content-length", "")
        if max_bytes is not None and declared.isdigit() and int(declared) > max_bytes:
            raise self._too_large(shown, int(declared), max_bytes)
        digest = hashlib.sha256()
        size = 0
        deadline = pace.deadline
        # A new file, never through a link at the `.part` name (safefs).
        with safefs.create_new(part, root) as file:
            try:
                async for chunk in response.aiter_bytes(self._chunk_size):
                    size += len(chunk)
                    if max_bytes is not None and size > max_bytes:
                        raise self._too_large(shown, None, max_bytes)
                    digest.update(chunk)
                    # Plain writes on the event loop: they land in the page cache in microseconds.
                    file.write(chunk)
                    pace.deadline = deadline + size / MIN_DOWNLOAD_RATE
            except OSError as exc:
                raise safefs.storage_error(exc, dest) from None
        try:
            os.replace(part, dest)  # replaces a link at `dest`, never writes through it
        except OSError as exc:
            raise safefs.storage_error(exc, dest) from None
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
