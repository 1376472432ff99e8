"""How much the sandbox sustains: held `Prefer: wait` connections and creates per second.

    python bench/sandbox_capacity.py                    # 1,000 held, then 10 s of creates
    python bench/sandbox_capacity.py --held 2000 --workers 64 --seconds 20

The sandbox runs as `batchrun sandbox` in its own process (as a benchmark's would), and this
script drives it with httpx over loopback. Kept out of the test suite: timings belong to a
quiet machine. The client needs one file descriptor per held connection, so the soft limit of
open files is raised to the hard one first.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import time
from collections import Counter

import anyio
import httpx

TOKEN_HEADER = "Authorization: Bearer bench\r\n"
CREATE = "/v1/models/acme/painter/predictions"
BODY = b'{"input": {"prompt": "a red fox", "seed": 1}}'


def raise_open_files() -> None:
    """Lift the soft limit on open files to the hard one: a benchmark holds thousands."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_sandbox(latency: float) -> tuple[subprocess.Popen[str], str]:
    """`batchrun sandbox` on a free port; returns the process and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "batchrun", "sandbox", "--port", "0", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    match = re.search(r"at (http://\S+);", process.stdout.readline())
    if match is None:
        process.kill()
        raise SystemExit("the sandbox printed no banner")
    return process, match.group(1)


class Connection:
    """A bare HTTP/1.1 keep-alive connection: measures the sandbox, not an HTTP client.

    (httpx's pool costs more CPU per request than the sandbox does to answer it, so with
    httpx the client process would be what this measures.)
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.stream: anyio.abc.SocketStream | None = None
        self.buffer = b""

    async def request(self, method: str, path: str, body: bytes = b"", wait: bool = False) -> int:
        """Send one request and read its whole answer; return the status."""
        if self.stream is None:
            self.stream = await anyio.connect_tcp(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n{TOKEN_HEADER}"
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        if wait:
            head += "Prefer: wait=60\r\n"
        await self.stream.send(head.encode() + b"\r\n" + body)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self.stream.receive()
        header, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", header).group(1))  # type: ignore[union-attr]
        while len(self.buffer) < length:
            self.buffer += await self.stream.receive()
        self.buffer = self.buffer[length:]
        return int(header.split(b" ", 2)[1])

    async def close(self) -> None:
        if self.stream is not None:
            await self.stream.aclose()


async def held(host: str, port: int, count: int, latency: float) -> None:
    """Open `count` creates at once, each waiting for a prediction of `latency` seconds."""
    statuses: Counter[int] = Counter()

    async def one() -> None:
        connection = Connection(host, port)
        statuses[await connection.request("POST", CREATE, BODY, wait=True)] += 1
        await connection.close()

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(count):
            group.start_soon(one)
    elapsed = time.perf_counter() - began
    print(
        f"held: {count} creates with Prefer: wait on {latency:g} s predictions -> "
        f"{dict(statuses)} in {elapsed:.2f} s"
    )


async def rate(host: str, port: int, path: str, workers: int, seconds: float) -> None:
    """POST creates (or GET `path`) as fast as `workers` connections can for `seconds`."""
    done: Counter[int] = Counter()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        connection = Connection(host, port)
        while time.perf_counter() < deadline:
            if path == CREATE:
                done[await connection.request("POST", CREATE, BODY)] += 1
            else:
                done[await connection.request("GET", path)] += 1
        await connection.close()

    began = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(workers):
            group.start_soon(worker)
    per_second = sum(done.values()) / (time.perf_counter() - began)
    name = "creates" if path == CREATE else "GET /v1/predictions/{id}"
    print(f"{name}: {per_second:,.0f}/s over {workers} connections ({dict(done)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--held", type=int, default=1000, help="creates held at once")
    parser.add_argument("--hold-latency", type=float, default=5.0, help="seconds each runs")
    parser.add_argument("--workers", type=int, default=32, help="connections for the rate test")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the rate test")
    args = parser.parse_args()
    raise_open_files()
    process, base = start_sandbox(args.hold_latency)
    host, port = base.removeprefix("http://").split(":")
    try:
        anyio.run(held, host, int(port), args.held, args.hold_latency)
        print(httpx.get(f"{base}/_sandbox/stats").json()["max_held"], "held at most at once")
        httpx.post(f"{base}/_sandbox/config", json={"latency": 1.0})
        anyio.run(rate, host, int(port), CREATE, args.workers, args.seconds)
        newest = httpx.get(f"{base}/v1/predictions", headers={"Authorization": "Bearer b"})
        path = f"/v1/predictions/{newest.json()['results'][0]['id']}"
        anyio.run(rate, host, int(port), path, args.workers, args.seconds)
    finally:
        process.terminate()
        process.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
