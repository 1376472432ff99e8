"""A hostile API over loopback: endless, inflating, deep, dripping and echoing answers all end,
quickly, in one clear error; nothing grows without bound and the token is never kept."""

from __future__ import annotations

import gzip
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hostile import Request, answer, hostile
from leaks import TOKEN

import batchrun.api.client
from batchrun.api.client import Client
from batchrun.api.ratelimit import RateLimiter
from batchrun.api.retry import RetryPolicy
from batchrun.errors import ApiConnectionError, InvalidRequestError, ServerError, secrets_in_use
from batchrun.manifest.writer import encode_line

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.usefixtures("errors_never_show_token"),
    pytest.mark.timeout(30),
]

FAST = RetryPolicy(attempts=2, backoff_base=0.001, backoff_cap=0.002)
PREDICTION: dict[str, Any] = {
    "id": "p1",
    "status": "succeeded",
    "input": {},
    "output": "ok",
    "created_at": "2026-01-01T00:00:00Z",
}


def client(base: str) -> Client:
    return Client(
        base,
        TOKEN,
        retry=FAST,
        create_limiter=RateLimiter(10_000),
        request_limiter=RateLimiter(10_000),
    )


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    # One MiB stands in for the real limit: the rule under test, at a size a test reads fast.
    monkeypatch.setattr(batchrun.api.client, "MAX_ANSWER_BYTES", 1 << 20)
    return 1 << 20


def endless(request: Request, conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n[")
    while True:
        conn.sendall(b"1," * 32768)


async def test_an_endless_answer_stops_at_the_size_limit(small_limit: int) -> None:
    with hostile(endless) as server:
        async with client(server.url) as api:
            with pytest.raises(ServerError) as caught:
                await api.get("p1")
    assert str(caught.value) == (
        f"GET {server.url}/v1/predictions/p1: 502 the answer is larger than {small_limit} bytes"
    )


async def test_a_gzip_bomb_is_measured_after_decoding(small_limit: int) -> None:
    bomb = gzip.compress(b" " * (50 << 20))  # 50 MiB of spaces in about 50 KB

    def inflating(request: Request, conn: socket.socket) -> None:
        answer(conn, 200, bomb, extra={"Content-Encoding": "gzip"})

    with hostile(inflating) as server:
        async with client(server.url) as api:
            with pytest.raises(ServerError) as caught:
                await api.get("p1")
    assert len(bomb) < small_limit
    assert "the answer is larger than 1048576 bytes" in str(caught.value)


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
async def test_deeply_nested_json_is_a_bad_answer_not_a_crash(depth: int) -> None:
    deep = {**PREDICTION, "output": json.loads("[" * 10 + "]" * 10)}
    text = json.dumps(deep).replace('"output": [', '"output": ' + "[" * (depth - 1) + "[", 1)
    text = text.replace("]", "]" * depth, 1)
    body = text.encode()

    with hostile(lambda request, conn: answer(conn, 200, body)) as server:
        async with client(server.url) as api:
            with pytest.raises(ServerError) as caught:
                await api.get("p1")
    assert str(caught.value) == (
        f"GET {server.url}/v1/predictions/p1: 200 response is not what the API promised: "
        "JSON nested deeper than 64 levels"
    )


async def test_json_within_the_depth_limit_is_read() -> None:
    nested: Any = "leaf"
    for _ in range(60):
        nested = [nested]
    body = json.dumps({**PREDICTION, "output": nested}).encode()
    with hostile(lambda request, conn: answer(conn, 200, body)) as server:
        async with client(server.url) as api:
            got = await api.get("p1")
    assert got.status == "succeeded"


async def test_a_dripping_answer_ends_at_the_call_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batchrun.api.client, "CALL_DEADLINE", 0.5)

    def drip(request: Request, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n")
        while True:
            conn.sendall(b" ")
            time.sleep(0.05)  # the server's pace, well inside the per-read timeout

    with hostile(drip) as server:
        api = Client(server.url, TOKEN, retry=FAST, read_timeout=0.3)
        async with api:
            started = time.monotonic()
            with pytest.raises(ApiConnectionError) as caught:
                await api.get("p1")
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"GET {server.url}/v1/predictions/p1: timed out (the answer took longer than 1 s in all)"
    )


async def test_a_list_with_endless_pages_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batchrun.api.client, "MAX_LIST_PAGES", 5)
    pages = iter(range(1_000_000))

    def fresh_next(request: Request, conn: socket.socket) -> None:
        body = {"results": [], "next": f"/v1/predictions?cursor={next(pages)}"}
        answer(conn, 200, json.dumps(body).encode())

    with hostile(fresh_next) as server:
        async with client(server.url) as api:
            with pytest.raises(ServerError) as caught:
                async for _ in api.list_predictions():
                    pass
    assert len(server.requests) == 5
    assert str(caught.value).endswith(
        ": 200 response is not what the API promised: the list goes on past 5 pages"
    )


async def test_an_echoed_token_is_kept_as_it_came_and_redacted_in_what_is_written() -> None:
    # The answer is data batchrun acts on: the sinks redact (tests/test_security_redaction.py).
    echoed = {**PREDICTION, "status": "failed", "error": f"bad token {TOKEN}", "logs": TOKEN}
    body = json.dumps(echoed).encode()
    with hostile(lambda request, conn: answer(conn, 200, body)) as server:
        async with client(server.url) as api:
            got = await api.get("p1")
    assert (got.error, got.logs) == (f"bad token {TOKEN}", TOKEN)
    assert encode_line(got.raw, secrets_in_use()) == encode_line(
        json.loads(body.replace(TOKEN.encode(), b"***"))
    )


async def test_an_echoed_token_is_redacted_in_a_refusal() -> None:
    problem = {"title": "Invalid", "detail": f"token {TOKEN} refused", "status": 422}
    body = json.dumps(problem).encode()
    with hostile(lambda request, conn: answer(conn, 422, body)) as server:
        async with client(server.url) as api:
            with pytest.raises(InvalidRequestError) as caught:
                await api.get("p1")
    assert TOKEN not in repr(caught.value.detail)
    assert "token *** refused" in str(caught.value)


@pytest.mark.parametrize("ident", ["../../models/acme/x", "a/b", "..", "a\\b", "x" * 500])
async def test_a_prediction_id_that_is_not_an_id_is_a_bad_answer(ident: str) -> None:
    # The id goes into /predictions/{id} and into file names: it must be one segment of letters.
    body = json.dumps({**PREDICTION, "id": ident}).encode()

    def answering(request: Request, conn: socket.socket) -> None:
        answer(conn, 200, body)

    with hostile(answering) as server:
        async with client(server.url) as api:
            with pytest.raises(ServerError) as caught:
                await api.get("p1")
    assert "in the response is not an id" in str(caught.value)


async def test_a_token_echoed_json_escaped_is_found_in_the_decoded_text() -> None:
    escaped = "".join(f"\\u{ord(c):04x}" for c in TOKEN)
    body = (
        json.dumps({**PREDICTION, "status": "failed", "output": None, "error": "ECHO"})
        .replace("ECHO", f"bad token {escaped}")
        .encode()
    )
    assert TOKEN.encode() not in body

    def echoing(request: Request, conn: socket.socket) -> None:
        answer(conn, 200, body)

    with hostile(echoing) as server:
        async with client(server.url) as api:
            got = await api.get("p1")
    assert got.error == f"bad token {TOKEN}"  # decoded, as it came
    line = encode_line(got.raw, secrets_in_use())  # the manifest's line for it
    assert TOKEN not in line.decode()
    assert json.loads(line)["error"] == "bad token ***"


async def test_a_short_token_never_changes_the_data_batchrun_acts_on() -> None:
    # REPLICATE_API_TOKEN=x "redacted" inside ids and URLs broke 548 of 1,000 downloads.
    body = json.dumps({**PREDICTION, "id": "xyzx", "output": "http://files.test/x.png"}).encode()

    def answering(request: Request, conn: socket.socket) -> None:
        answer(conn, 200, body)

    with hostile(answering) as server:
        async with Client(server.url, "x", retry=FAST) as api:
            got = await api.get("xyzx")
    assert (got.id, got.output) == ("xyzx", "http://files.test/x.png")
