"""A hostile HTTP server on loopback: each test writes the raw bytes it answers with.

A thread per connection, plain sockets: the server can drip, lie about lengths, send gzip bombs
or never stop, which a well-behaved framework would not let it do. It records each request's
head (lower-cased header names) so tests can see what batchrun sent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# Seconds a handler's socket waits for the client: keeps a stuck test from outliving its timeout.
_SOCKET_TIMEOUT = 10.0


@dataclass
class Request:
    """One request as it arrived: the request line, its headers and its body."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


Handler = Callable[[Request, socket.socket], None]


@dataclass
class Hostile:
    """A server on 127.0.0.1 answering every request with `handler`."""

    handler: Handler
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        conn.settimeout(_SOCKET_TIMEOUT)
        with contextlib.suppress(OSError), conn:
            while not self.stop.is_set():
                request = _read_request(conn)
                if request is None:
                    return
                self.requests.append(request)
                self.handler(request, conn)


def _read_request(conn: socket.socket) -> Request | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return Request(method, target, headers, body)


def answer(
    conn: socket.socket,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> None:
    """Send one whole response, keeping the connection open."""
    headers = {"Content-Type": content_type, "Content-Length": str(len(body)), **(extra or {})}
    head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    conn.sendall(head.encode() + b"\r\n" + body)


@contextlib.contextmanager
def hostile(handler: Handler) -> Iterator[Hostile]:
    """A Hostile server for the block, stopped at its end."""
    server = Hostile(handler)
    try:
        yield server
    finally:
        server.close()
