"""Downloads over httpx.MockTransport: atomic files, hashes, size caps, expiry, retries, and the
token going to the API origin only, redirects included."""

from __future__ import annotations

import errno
import hashlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from leaks import TOKEN
from scripted import Script

import batchrun.api.download
import batchrun.safefs
from batchrun.api.client import Client
from batchrun.api.retry import RetryPolicy
from batchrun.errors import DownloadError, ExpiredURLError, StorageError

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("errors_never_show_token")]

FAST = RetryPolicy(attempts=3, backoff_base=0.001, backoff_cap=0.002)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40


def files_client(script: Script, base: str = "https://api.test/replicate") -> Client:
    def api(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"the API client was used for {request.url}")

    return Client(
        base,
        TOKEN,
        transport=httpx.MockTransport(api),
        file_transport=httpx.MockTransport(script),
        retry=FAST,
    )


def png(**headers: str) -> httpx.Response:
    return httpx.Response(200, content=PNG, headers={"Content-Type": "image/png", **headers})


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


async def test_a_file_is_streamed_into_place_with_its_hash(tmp_path: Path) -> None:
    script = Script(png())
    dest = tmp_path / "run" / "flux" / "a-0.png"
    async with files_client(script) as client:
        got = await client.download("https://replicate.delivery/x/out-0.png", dest)
    assert dest.read_bytes() == PNG
    assert got.path == str(dest)
    assert got.sha256 == hashlib.sha256(PNG).hexdigest()
    assert got.bytes == len(PNG)
    assert got.content_type == "image/png"
    assert leftovers(tmp_path) == ["a-0.png"]
    assert client.stats.downloads == 1


async def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    dest = tmp_path / "a.png"
    dest.write_bytes(b"old and much longer than the new content" * 1000)
    async with files_client(Script(httpx.Response(200, content=b"new"))) as client:
        await client.download("https://files.test/a.png", dest)
    assert dest.read_bytes() == b"new"


async def test_the_file_is_whole_when_it_is_renamed_and_not_fsynced_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Durability comes from the runner's periodic sync and the manifest's sha256 (see
    # download.py); a per-file fsync would stall every other file operation.
    events: list[str] = []
    real_replace = os.replace
    body = png()

    def fsync(fd: int) -> None:
        events.append("fsync")

    def replace(src: Any, dst: Any) -> None:
        events.append(f"replace {Path(src).name} -> {Path(dst).name} ({Path(src).stat().st_size})")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    async with files_client(Script(body)) as client:
        await client.download("https://files.test/a.png", tmp_path / "a.png")
    (event,) = events
    assert re.fullmatch(
        rf"replace \.a\.png\.[0-9a-f]{{12}}\.part -> a\.png \({len(body.content)}\)", event
    )


# The token --------------------------------------------------------------------------------


async def test_a_file_host_never_gets_the_token(tmp_path: Path) -> None:
    script = Script(png())
    async with files_client(script) as client:
        await client.download("https://replicate.delivery/x/out-0.png", tmp_path / "a.png")
    assert "authorization" not in script.requests[0].headers


async def test_a_file_on_the_api_origin_gets_the_token(tmp_path: Path) -> None:
    script = Script(png())
    url = "https://api.test/replicate/v1/files/f1/download?owner=me&expiry=1&signature=s"
    async with files_client(script) as client:
        await client.download(url, tmp_path / "a.png")
    assert script.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize(
    "url",
    [
        "http://api.test/replicate/v1/files/f1/download",  # another scheme
        "https://api.test:8443/replicate/v1/files/f1/download",  # another port
        "https://files.api.test/f1",  # a subdomain
        "https://api.test.evil.example/f1",  # a lookalike
    ],
)
async def test_a_near_miss_of_the_api_origin_gets_no_token(tmp_path: Path, url: str) -> None:
    script = Script(png())
    async with files_client(script) as client:
        await client.download(url, tmp_path / "a.png")
    assert "authorization" not in script.requests[0].headers


async def test_the_default_port_is_the_same_origin(tmp_path: Path) -> None:
    script = Script(png())
    async with files_client(script) as client:
        await client.download("https://api.test:443/replicate/v1/files/f1", tmp_path / "a.png")
    assert script.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_a_redirect_from_the_api_origin_to_a_file_host_drops_the_token(
    tmp_path: Path,
) -> None:
    script = Script(
        httpx.Response(302, headers={"Location": "https://cdn.test/signed/a.png?sig=1"}),
        png(),
    )
    async with files_client(script) as client:
        got = await client.download("https://api.test/replicate/v1/files/f1", tmp_path / "a.png")
    first, second = script.requests
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert str(second.url) == "https://cdn.test/signed/a.png?sig=1"
    assert "authorization" not in second.headers
    assert got.bytes == len(PNG)


async def test_a_redirect_from_a_file_host_back_to_the_api_origin(tmp_path: Path) -> None:
    # Issue 13: the file host chose the second URL, so the token does not ride on it, even
    # though it is on the API origin (a host that can redirect there could log the request).
    script = Script(
        httpx.Response(307, headers={"Location": "https://api.test/replicate/v1/files/f1"}),
        png(),
    )
    async with files_client(script) as client:
        await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    first, second = script.requests
    assert "authorization" not in first.headers
    assert "authorization" not in second.headers


async def test_relative_redirects_are_followed(tmp_path: Path) -> None:
    script = Script(httpx.Response(301, headers={"Location": "/b/a.png"}), png())
    async with files_client(script) as client:
        await client.download("https://cdn.test/a/a.png", tmp_path / "a.png")
    assert script.urls == ["https://cdn.test/a/a.png", "https://cdn.test/b/a.png"]


async def test_too_many_redirects_is_a_download_error(tmp_path: Path) -> None:
    script = Script(httpx.Response(302, headers={"Location": "https://cdn.test/loop"}))
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/loop", tmp_path / "a.png")
    assert str(caught.value) == "cannot download https://cdn.test/loop: more than 10 redirects"
    assert len(script.requests) == 11
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://files.test/a.png",
        "data:image/png;base64,iVBORw0KGgo=",
        "/relative/a.png",
        "not a url",
    ],
)
async def test_only_http_and_https_urls_are_downloaded(tmp_path: Path, url: str) -> None:
    script = Script(png())
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download(url, tmp_path / "a.png")
    assert str(caught.value) == (f"cannot download {url}: only http and https URLs are supported")
    assert script.requests == []


async def test_a_redirect_to_a_local_file_is_refused(tmp_path: Path) -> None:
    script = Script(httpx.Response(302, headers={"Location": "file:///etc/passwd"}))
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    assert str(caught.value) == (
        "cannot download file:///etc/passwd: only http and https URLs are supported"
    )


# Size -------------------------------------------------------------------------------------


async def test_a_declared_size_over_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    script = Script(png())
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/a.png", tmp_path / "a.png", max_bytes=100)
    assert str(caught.value) == (
        f"cannot download https://cdn.test/a.png: the file has {len(PNG)} bytes, more than the"
        " limit of 100"
    )
    assert leftovers(tmp_path) == []


async def test_an_endless_body_stops_at_the_cap(tmp_path: Path) -> None:
    served = [0]

    async def endless() -> AsyncIterator[bytes]:
        while True:
            served[0] += 1
            yield b"x" * 65536

    script = Script(lambda request: httpx.Response(200, content=endless()))
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/big", tmp_path / "big", max_bytes=1_000_000)
    assert str(caught.value) == (
        "cannot download https://cdn.test/big: the file has more bytes than the limit of 1000000"
    )
    assert served[0] <= 17
    assert leftovers(tmp_path) == []
    assert len(script.requests) == 1


async def test_a_file_exactly_at_the_cap_is_fine(tmp_path: Path) -> None:
    async with files_client(Script(png())) as client:
        got = await client.download("https://cdn.test/a", tmp_path / "a", max_bytes=len(PNG))
    assert got.bytes == len(PNG)


# Failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 410])
async def test_an_expired_url_is_an_expired_url_error_and_not_retried(
    tmp_path: Path, status: int
) -> None:
    script = Script(httpx.Response(status, text="AccessDenied"))
    async with files_client(script) as client:
        with pytest.raises(ExpiredURLError) as caught:
            await client.download("https://replicate.delivery/x/out-0.png", tmp_path / "a.png")
    assert str(caught.value) == (
        f"output URL expired or gone: {status} from https://replicate.delivery/x/out-0.png"
    )
    assert caught.value.url == "https://replicate.delivery/x/out-0.png"
    assert len(script.requests) == 1
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "first",
    [
        httpx.Response(503, text="busy"),
        httpx.Response(429, text="slow down"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout(""),
    ],
)
async def test_transient_failures_are_retried(tmp_path: Path, first: Any) -> None:
    script = Script(first, png())
    async with files_client(script) as client:
        got = await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    assert got.sha256 == hashlib.sha256(PNG).hexdigest()
    assert len(script.requests) == 2
    assert client.stats.retries == 1


async def test_a_connection_lost_mid_body_starts_over_cleanly(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield PNG[:1000]
        raise httpx.ReadError("Connection reset by peer")

    script = Script(lambda request: httpx.Response(200, content=broken()), png())
    async with files_client(script) as client:
        got = await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    assert (tmp_path / "a.png").read_bytes() == PNG
    assert got.bytes == len(PNG)
    assert len(script.requests) == 2


async def test_a_file_host_that_keeps_failing_gives_up(tmp_path: Path) -> None:
    script = Script(httpx.Response(502, html="<title>502 Bad Gateway</title>"))
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    assert str(caught.value) == "cannot download https://cdn.test/a.png: 502 Bad Gateway"
    assert len(script.requests) == 3
    assert leftovers(tmp_path) == []


async def test_a_network_failure_that_persists_says_so(tmp_path: Path) -> None:
    script = Script(httpx.ConnectError("[Errno -2] Name or service not known"))
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    assert str(caught.value) == (
        "cannot download https://cdn.test/a.png: no answer ([Errno -2] Name or service not known)"
    )


async def test_other_client_errors_are_not_retried(tmp_path: Path) -> None:
    script = Script(httpx.Response(400, text="Bad Request"))
    async with files_client(script) as client:
        with pytest.raises(DownloadError) as caught:
            await client.download("https://cdn.test/a.png", tmp_path / "a.png")
    assert str(caught.value) == "cannot download https://cdn.test/a.png: 400 Bad Request"
    assert len(script.requests) == 1


class _FullDisk:
    """A file whose writes fail the way a full disk (or quota) fails them."""

    def __init__(self, code: int) -> None:
        self.code = code

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> int:
        raise OSError(self.code, os.strerror(self.code))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
async def test_a_full_disk_is_a_storage_error_naming_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    dest = tmp_path / "a.png"

    def opener(path: Any, root: Any) -> Any:
        Path(path).write_bytes(b"")  # the .part exists, as it would after a real open
        return _FullDisk(code)

    monkeypatch.setattr(batchrun.safefs, "create_new", opener)
    script = Script(png())
    async with files_client(script) as client:
        with pytest.raises(StorageError) as caught:
            await client.download("https://cdn.test/a.png", dest)
    assert str(caught.value) == f"cannot write {dest}: the disk is full ({os.strerror(code)})"
    assert len(script.requests) == 1
    assert leftovers(tmp_path) == []


async def test_a_folder_that_cannot_be_made_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    dest = tmp_path / "file" / "sub" / "a.png"
    async with files_client(Script(png())) as client:
        with pytest.raises(StorageError) as caught:
            await client.download("https://cdn.test/a.png", dest)
    assert str(caught.value) == f"cannot write {dest.parent}: Not a directory"


async def test_a_cancelled_download_leaves_no_part_file(tmp_path: Path) -> None:
    started = anyio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield PNG[:1000]
        started.set()
        await anyio.sleep_forever()
        yield b""

    script = Script(lambda request: httpx.Response(200, content=stalled()))
    async with files_client(script) as client, anyio.create_task_group() as tg:

        async def fetch() -> None:
            await client.download("https://cdn.test/a.png", tmp_path / "a.png")

        tg.start_soon(fetch)
        await started.wait()
        (part,) = leftovers(tmp_path)
        assert re.fullmatch(r"\.a\.png\.[0-9a-f]{12}\.part", part)
        tg.cancel_scope.cancel()
    assert leftovers(tmp_path) == []
