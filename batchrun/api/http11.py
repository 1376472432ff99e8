"""A lean HTTP/1.1 transport for httpx: keep-alive connections on anyio streams, parsed by h11.

Why not httpx's own transport (httpcore)? Its pool re-examines every connection it holds on each
request, each examination a trip through anyio's attribute table with a `getpeername` system call,
and wraps every read and write in timeout scopes. Against a local server that came to about 1.5 ms
of CPU per request, ten times the cost of the request itself; the runner sends two requests per
prediction (create, download) and has a CPU budget of 2 ms for all of it.

This transport does only what batchrun needs, in the cheapest way that is still correct:

- one pool per origin of idle connections, newest first; a FIFO semaphore caps connections in use
  at `max_connections`, so requests queue here, in order, never inside a pool;
- before an idle connection is reused, one `poll()` on its socket says whether the server closed
  it; connections idle longer than `keepalive_expiry` are closed instead (servers close theirs
  after about 5 s, and a request sent on a closing connection is lost);
- the request head and a bytes body go out in one `send`; the response is parsed by h11 (chunked
  bodies, content lengths, keep-alive rules) and streamed to httpx;
- timeouts come from httpx (`request.extensions["timeout"]`): connect, write, and read per
  receive; failures are raised as httpx's own exceptions (ConnectError, ReadTimeout,
  RemoteProtocolError...), so the client above classifies them as it would httpcore's;
- a connection whose exchange was interrupted (an error, a cancellation, a body not read to the
  end) is closed, never reused.

TLS uses the SSL context given (httpx's default: certifi's CAs), with the host name for SNI. No
proxies, no HTTP/2: where the environment names a proxy, `httppool.async_client` keeps httpx's
transport.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.abc
import h11
import httpx

Origin = tuple[str, str, int]
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
_READ_SIZE = 65536


class RefusedAddressError(httpx.ConnectError):
    """The connection reached an address the transport was told to refuse (and was closed)."""


class _Connection:
    """One keep-alive connection to one origin."""

    __slots__ = ("_poller", "conn", "origin", "stream", "used_at")

    def __init__(self, origin: Origin, stream: anyio.abc.ByteStream, raw: Any) -> None:
        self.origin = origin
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.used_at = time.monotonic()
        self._poller: select.poll | None = None
        if raw is not None and hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(raw, select.POLLIN)

    def closed_by_server(self) -> bool:
        """True when the idle socket has something to read: an EOF, or bytes nobody asked for."""
        return bool(self._poller is not None and self._poller.poll(0))

    async def aclose(self) -> None:
        # Closing a broken socket may fail; it is gone either way.
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await self.stream.aclose()


class _Body(httpx.AsyncByteStream):
    """A response body read from its connection; hands the connection back when finished."""

    def __init__(self, transport: Http11Transport, connection: _Connection, timeout: float | None):
        self._transport = transport
        self._connection: _Connection | None = connection
        self._timeout = timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._connection
        if connection is None:
            return
        while True:
            event = await _next_event(connection, self._timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._connection = None
                await self._transport._release(connection, reusable=True)
                return

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:  # closed before the end: the connection is mid-message
            await self._transport._release(connection, reusable=False)


class Http11Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive, at most `max_connections` requests in flight, FIFO."""

    def __init__(
        self,
        max_connections: int,
        *,
        verify: ssl.SSLContext | bool | Callable[[], ssl.SSLContext] = True,
        keepalive_expiry: float = 4.5,
        refuse: Callable[[str], bool] | None = None,
    ) -> None:
        """`verify`: as httpx takes it, or a function that makes the context, called at the
        first TLS connection (loading the CA bundle takes about 100 ms, which a client that
        never connects, or only over plain HTTP, need not spend)."""
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._slots = anyio.Semaphore(max_connections)
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._idle_count = 0
        self._max = max_connections
        self._expiry = keepalive_expiry
        # Judged on the address actually connected to, so no name (or DNS answer) gets past it.
        self._refuse = refuse
        self.connections_opened = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        await self._slots.acquire()
        try:
            connection = await self._connection_for(request, timeouts.get("connect"))
        except BaseException:
            self._slots.release()
            raise
        try:
            await self._send(connection, request, timeouts.get("write"))
            response = await _next_event(connection, timeouts.get("read"))
        except BaseException:
            await self._release(connection, reusable=False)
            raise
        assert isinstance(response, h11.Response)
        return httpx.Response(
            response.status_code,
            headers=response.headers.raw_items(),
            stream=_Body(self, connection, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
        )

    async def _connection_for(self, request: httpx.Request, seconds: float | None) -> _Connection:
        url = request.url
        scheme = url.raw_scheme
        origin = (scheme.decode(), url.host, url.port or _DEFAULT_PORTS.get(scheme, 80))
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            self._idle_count -= 1
            if now - connection.used_at < self._expiry and not connection.closed_by_server():
                return connection
            await connection.aclose()
        if self._idle_count >= self._max:
            await self._close_one_idle()
        return await self._connect(origin, seconds)

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            verify = self._verify
            if isinstance(verify, ssl.SSLContext):
                self._ssl_context = verify
            elif isinstance(verify, bool):
                self._ssl_context = httpx.create_ssl_context(verify)
            else:
                self._ssl_context = verify()
        return self._ssl_context

    async def _connect(self, origin: Origin, seconds: float | None) -> _Connection:
        scheme, host, port = origin
        tls = scheme == "https"
        try:
            with anyio.fail_after(seconds):
                stream: anyio.abc.ByteStream
                if tls:
                    stream = await anyio.connect_tcp(
                        host,
                        port,
                        ssl_context=self._ssl(),
                        tls_hostname=host,
                        tls_standard_compatible=False,
                    )
                else:
                    stream = await anyio.connect_tcp(host, port)
        except TimeoutError:
            raise httpx.ConnectTimeout("") from None  # the client names the request
        except anyio.EndOfStream:  # the peer hung up during the TLS handshake
            raise httpx.ConnectError(
                f"cannot connect to {host}:{port}: the server closed the connection"
            ) from None
        except (OSError, anyio.BrokenResourceError, ssl.SSLError) as error:
            # anyio says "All connection attempts failed"; the reason is in its cause.
            cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {_reason(cause)}") from None
        if self._refuse is not None:
            peer = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
            address = peer[0] if isinstance(peer, tuple) else ""
            if self._refuse(address):
                await anyio.aclose_forcefully(stream)
                raise RefusedAddressError(
                    f"{host} is at {address}, a link-local or cloud metadata address"
                )
        self.connections_opened += 1
        raw = stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        return _Connection(origin, stream, raw)

    async def _send(
        self, connection: _Connection, request: httpx.Request, seconds: float | None
    ) -> None:
        conn = connection.conn
        headers = [(name, value) for name, value in request.headers.raw]
        body = request.content if isinstance(request.stream, httpx.ByteStream) else None
        if body is None:
            body = b"".join([part async for part in request.stream])  # type: ignore[union-attr]
        data = conn.send(
            h11.Request(method=request.method, target=request.url.raw_path, headers=headers)
        )
        assert data is not None
        if body:
            data += conn.send(h11.Data(data=body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        try:
            with anyio.fail_after(seconds):
                await connection.stream.send(data)
        except TimeoutError:
            raise httpx.WriteTimeout("") from None
        except (
            OSError,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            anyio.EndOfStream,
        ) as error:
            raise httpx.WriteError(str(error) or type(error).__name__) from None

    async def _release(self, connection: _Connection, *, reusable: bool) -> None:
        try:
            conn = connection.conn
            if (
                reusable
                and conn.our_state is h11.DONE
                and conn.their_state is h11.DONE
                and not conn.trailing_data[0]  # bytes past the answer: the stream is confused
                and self._idle_count < self._max
            ):
                conn.start_next_cycle()
                connection.used_at = time.monotonic()
                self._idle.setdefault(connection.origin, deque()).append(connection)
                self._idle_count += 1
            else:
                await connection.aclose()
        finally:
            self._slots.release()

    async def _close_one_idle(self) -> None:
        for idle in self._idle.values():
            if idle:
                self._idle_count -= 1
                await idle.popleft().aclose()
                return

    async def aclose(self) -> None:
        for idle in self._idle.values():
            while idle:
                await idle.pop().aclose()
        self._idle.clear()
        self._idle_count = 0


def _reason(error: BaseException) -> str:
    """Why a connection failed, in the system's words ("Connection refused")."""
    if isinstance(error, ssl.SSLError):  # its errno is the SSL library's, not the system's
        return str(error.reason or error)
    if isinstance(error, socket.gaierror):
        return str(error.strerror)
    number = getattr(error, "errno", None)
    if isinstance(number, int) and number > 0:
        return os.strerror(number)
    return str(error) or type(error).__name__


async def _next_event(connection: _Connection, seconds: float | None) -> Any:
    """The next response event (h11.Response, Data or EndOfMessage), reading as needed."""
    conn = connection.conn
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            raise httpx.RemoteProtocolError(str(error)) from None
        if event is h11.NEED_DATA:
            try:
                with anyio.fail_after(seconds):
                    data = await connection.stream.receive(_READ_SIZE)
            except anyio.EndOfStream:
                data = b""
            except TimeoutError:
                raise httpx.ReadTimeout("") from None
            except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
                raise httpx.ReadError(str(error) or type(error).__name__) from None
            if not data and conn.their_state is h11.SEND_RESPONSE:
                raise httpx.RemoteProtocolError(
                    "the server closed the connection without answering"
                )
            conn.receive_data(data)
            continue
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and the like: the real answer follows
        if isinstance(event, h11.ConnectionClosed):
            raise httpx.RemoteProtocolError("the server closed the connection mid-answer")
        return event
