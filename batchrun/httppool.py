"""Connection pooling that stays cheap with hundreds of connections and thousands of requests.

httpcore's pool re-examines every connection it holds each time a request starts or ends: a
keep-alive check and, for each idle connection, a socket readability probe through anyio's
attribute table, tens of microseconds apiece; requests it has to queue are matched against every
connection again on each pass. With a hundred connections and a queue, that bookkeeping costs
milliseconds per request, more than everything else the client does. So:

- the connections are split over several small pools, and each request goes to the pool with the
  fewest requests in flight, which keeps every scan short;
- a FIFO semaphore in front admits at most `max_connections` requests at once, so no request ever
  waits inside httpcore's queue (and, like the pool it replaces, it never times out).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping

import anyio
import httpx

POOL_SIZE = 8
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


def async_client(
    *,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool = True,
) -> httpx.AsyncClient:
    """An AsyncClient that follows no redirects, on a ShardedTransport unless told otherwise.

    httpx honours proxy variables only on its own transport, so when the environment names a
    proxy the client keeps httpx's (and its per-request cost).
    """
    if transport is None and not any(
        os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES
    ):
        transport = ShardedTransport(max_connections, verify=verify)
    return httpx.AsyncClient(
        headers=headers,
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
        verify=verify,
        follow_redirects=False,
    )


class _Releasing(httpx.AsyncByteStream):
    """A response body that gives its slot back when it is closed (once)."""

    def __init__(self, inner: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if self._release is not None:
                release, self._release = self._release, None
                release()


class ShardedTransport(httpx.AsyncBaseTransport):
    """`max_connections` connections over pools of about `pool_size`, least busy pool first."""

    def __init__(
        self,
        max_connections: int,
        *,
        pool_size: int = POOL_SIZE,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        count = -(-max_connections // pool_size)
        size = -(-max_connections // count)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        # One context for all pools: loading the CA bundle takes tens of milliseconds each time.
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)
        self._pools = [
            httpx.AsyncHTTPTransport(verify=context, limits=limits) for _ in range(count)
        ]
        self._busy = [0] * count
        self._slots = anyio.Semaphore(max_connections)

    @property
    def busy(self) -> tuple[int, ...]:
        """Requests in flight per pool (sent, and their bodies not yet closed)."""
        return tuple(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self._slots.acquire()
        busy = self._busy
        index = busy.index(min(busy))
        busy[index] += 1

        def release() -> None:
            busy[index] -= 1
            self._slots.release()

        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Releasing(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()
