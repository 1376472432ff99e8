"""Hostile file hosts over loopback: no credentials where a file host chose the URL, none from
userinfo, no link-local addresses, no endless drip, and nothing written outside the run folder."""

from __future__ import annotations

import json
import os
import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from hostile import Request, answer, hostile
from leaks import TOKEN

import batchrun.api.download
import batchrun.safefs
from batchrun.api.client import Client
from batchrun.api.download import refused_address
from batchrun.api.http11 import Http11Transport, RefusedAddressError
from batchrun.api.retry import RetryPolicy
from batchrun.cli import main
from batchrun.errors import DownloadError, StorageError
from batchrun.manifest.reader import load_records
from batchrun.sandbox import Sandbox

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures("errors_never_show_token"),
    pytest.mark.timeout(30),
]

FAST = RetryPolicy(attempts=2, backoff_base=0.001, backoff_cap=0.002)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def png(request: Request, conn: socket.socket) -> None:
    answer(conn, 200, PNG, "image/png")


def client(base: str) -> Client:
    return Client(base, TOKEN, retry=FAST)


async def test_a_file_host_redirecting_into_the_api_origin_gets_no_token(tmp_path: Path) -> None:
    with hostile(png) as api_server:
        target = f"{api_server.url}/v1/files/f1"

        def redirect(request: Request, conn: socket.socket) -> None:
            answer(conn, 302, b"", extra={"Location": target})

        with hostile(redirect) as files:
            async with client(api_server.url) as api:
                await api.download(f"{files.url}/a.png", tmp_path / "a.png", root=tmp_path)
    assert (tmp_path / "a.png").read_bytes() == PNG
    assert "authorization" not in files.requests[0].headers
    assert [r.target for r in api_server.requests] == ["/v1/files/f1"]
    assert "authorization" not in api_server.requests[0].headers


async def test_the_api_origin_itself_still_gets_the_token(tmp_path: Path) -> None:
    with hostile(png) as api_server:
        async with client(api_server.url) as api:
            await api.download(f"{api_server.url}/v1/files/f1", tmp_path / "a.png")
    assert api_server.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_userinfo_in_an_output_url_is_not_sent(tmp_path: Path) -> None:
    with hostile(png) as files:
        url = f"http://user:secret@127.0.0.1:{files.port}/a.png"
        async with client("https://api.test") as api:
            await api.download(url, tmp_path / "a.png")
    assert "authorization" not in files.requests[0].headers
    assert (tmp_path / "a.png").read_bytes() == PNG


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/iam/",
        "http://[fe80::1]/x.png",
        "http://[::ffff:169.254.169.254]/x",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/latest/meta-data/",
    ],
)
async def test_link_local_and_metadata_addresses_are_refused(tmp_path: Path, url: str) -> None:
    async with client("https://api.test") as api:
        with pytest.raises(DownloadError) as caught:
            await api.download(url, tmp_path / "a.png")
    host = httpx.URL(url).host
    assert str(caught.value) == (
        f"cannot download {url}: {host} is a link-local or cloud metadata address"
    )
    assert os.listdir(tmp_path) == []


def test_loopback_and_public_addresses_are_allowed() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "8.8.8.8", "replicate.delivery"):
        assert not refused_address(host), host


async def test_the_transport_judges_the_address_it_actually_reached() -> None:
    # A name can resolve anywhere; the check runs on the connected peer. Here loopback stands in
    # for a link-local address, since a test cannot listen on one.
    with hostile(png) as files:
        transport = Http11Transport(4, refuse=lambda address: address == "127.0.0.1")
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(RefusedAddressError) as caught:
                await http.get(f"http://localhost:{files.port}/a.png")
    assert str(caught.value) == "localhost is at 127.0.0.1, a link-local or cloud metadata address"
    assert files.requests == []


async def test_a_dripping_file_host_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batchrun.api.download, "DOWNLOAD_GRACE", 0.3)

    def drip(request: Request, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
        while True:
            conn.sendall(b"x")
            time.sleep(0.02)

    with hostile(drip) as files:
        async with client("https://api.test") as api:
            started = time.monotonic()
            with pytest.raises(DownloadError) as caught:
                await api.download(f"{files.url}/slow.png", tmp_path / "slow.png")
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"cannot download {files.url}/slow.png: the host sent less than 16 KiB/s "
        "(after 0 s of grace)"
    )
    assert os.listdir(tmp_path) == []


async def test_a_link_at_the_part_name_is_replaced_not_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A committed output folder can carry a relative link where the `.part` will be written
    # (its name is random: the test makes it known, as a lucky guess would).
    monkeypatch.setattr(batchrun.safefs, "_random_hex", lambda: "0123456789ab")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".a.png.0123456789ab.part").symlink_to("../victim.txt")
    (run / "b.png").symlink_to("../victim.txt")
    with hostile(png) as files:
        async with client("https://api.test") as api:
            await api.download(f"{files.url}/a.png", run / "a.png", root=run)
            await api.download(f"{files.url}/b.png", run / "b.png", root=run)
    assert victim.read_text() == "keep me"
    assert (run / "a.png").read_bytes() == PNG
    assert not (run / "b.png").is_symlink()
    assert (run / "b.png").read_bytes() == PNG
    assert sorted(os.listdir(run)) == ["a.png", "b.png"]


async def test_a_linked_folder_inside_the_run_folder_receives_nothing(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "flux").symlink_to(elsewhere)
    with hostile(png) as files:
        async with client("https://api.test") as api:
            with pytest.raises(StorageError) as caught:
                await api.download(f"{files.url}/a.png", run / "flux" / "a.png", root=run)
    assert str(caught.value) == (
        f"cannot write into {run}/flux: it leads outside {run} (through a link or `..`); "
        "batchrun writes only inside the run folder"
    )
    assert os.listdir(elsewhere) == []
    assert files.requests == []


def test_an_output_listing_too_many_files_fetches_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)
    urls: list[str] = []

    def succeeded(request: Request, conn: socket.socket) -> None:
        body = {
            "id": "p1",
            "status": "succeeded",
            "input": {},
            "output": urls,
            "created_at": "2026-01-01T00:00:00Z",
        }
        answer(conn, 201, json.dumps(body).encode())

    spec = tmp_path / "spec.yaml"
    spec.write_text("batchrun: 1\njobs:\n  - model: acme/flux\n    input: {prompt: x}\n")
    with hostile(succeeded) as server:
        urls.extend(f"{server.url}/f/{i}.png" for i in range(1001))
        code = main(["run", str(spec), "--base-url", server.url, "--quiet"])
    assert code == 1
    targets = [r.target for r in server.requests]
    assert "/v1/models/acme/flux/predictions" in targets  # (after run's pre-flight, if any)
    assert [t for t in targets if t.startswith("/f/")] == []  # not one file was fetched
    _, records = load_records(tmp_path / "runs" / "spec")
    (record,) = records.values()
    assert (record.status, record.error) == (
        "failed",
        "the output lists 1,001 files, more than the limit of 1,000; none were downloaded "
        "(the manifest keeps the output)",
    )
    assert len(record.output) == 1001


def test_the_sandbox_refuses_a_chunked_upload_as_it_passes_the_limit(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    # 200 MB offered without a length: the sandbox must answer 413 long before reading it all.
    sandbox = make_sandbox(max_upload_bytes=1 << 20)
    host, port = sandbox.base_url.removeprefix("http://").split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        reply = b""
        while sent < 200 << 20 and not reply:
            conn.sendall(chunk)
            sent += 65536
            if select.select([conn], [], [], 0)[0]:
                reply = conn.recv(65536)
    assert reply.startswith(b"HTTP/1.1 413")
    assert sent < 20 << 20


async def test_a_host_dripping_above_the_minimum_rate_ends_at_the_total_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fast enough for the rate check, forever: only a total deadline ends it. Small stand-ins
    # for the real values: the rule under test, at a scale a test runs fast.
    monkeypatch.setattr(batchrun.api.download, "MIN_DOWNLOAD_RATE", 1)
    monkeypatch.setattr(batchrun.api.download, "DOWNLOAD_DEADLINE", 1.5)

    def trickle(request: Request, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
        while True:
            conn.sendall(b"x" * 64)
            time.sleep(0.01)

    with hostile(trickle) as files:
        async with client("https://api.test") as api:
            started = time.monotonic()
            with pytest.raises(DownloadError) as caught:
                await api.download(f"{files.url}/slow.png", tmp_path / "slow.png")
    assert time.monotonic() - started < 10
    assert str(caught.value) == f"cannot download {files.url}/slow.png: not done after 2 s"
    assert os.listdir(tmp_path) == []


def test_private_addresses_are_allowed_by_decision() -> None:
    # Decided (docs/SECURITY.md): a proxy in a company network serves files from hosts on it;
    # only link-local and metadata addresses, which no file host needs, are refused.
    for host in ("10.1.2.3", "192.168.0.10", "172.16.5.4", "fd00::1"):
        assert not refused_address(host)
    for host in ("169.254.169.254", "fe80::1", "metadata.google.internal"):
        assert refused_address(host)
