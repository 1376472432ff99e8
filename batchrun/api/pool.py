"""The httpx clients batchrun talks through: on the lean HTTP/1.1 transport, without cookies.

`async_client` builds every AsyncClient the Client uses (one for the API, one for file hosts):
no redirects followed (the Client follows them by hand, deciding per hop who gets the token), no
cookie jar (the API sets none; httpx would parse every response for them), and the transport of
batchrun/http11.py, whose per-request cost is a fraction of httpcore's. When the environment
names a proxy, the client keeps httpx's own transport, the only one that honours proxies.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from batchrun.api.http11 import Http11Transport

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy")


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: reading cookies out of every answer costs real time."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _CookielessClient(httpx.AsyncClient):
    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value: Any) -> None:
        pass  # httpx's constructor sets an empty jar; there is nothing to keep


_NO_COOKIES = _NoCookies()


def proxy_configured() -> bool:
    """Whether the environment names an HTTP proxy."""
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES)


def async_client(
    *,
    headers: Mapping[str, str],
    timeout: httpx.Timeout,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None = None,
    verify: ssl.SSLContext | bool | Callable[[], ssl.SSLContext] = True,
    refuse: Callable[[str], bool] | None = None,
) -> httpx.AsyncClient:
    """An AsyncClient that follows no redirects and keeps no cookies, on Http11Transport.

    `refuse` judges each address connected to (see Http11Transport); through a proxy there is
    no such address to judge, and the check is left to the URL's host. `verify` may be a
    function that makes the SSL context: Http11Transport calls it at its first TLS connection.
    """
    if transport is None and not proxy_configured():
        transport = Http11Transport(max_connections, verify=verify, refuse=refuse)
    if callable(verify):  # httpx's own transports (a proxy's) take a context, made now
        verify = verify() if proxy_configured() else True
    return _CookielessClient(
        headers=headers,
        timeout=timeout,
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        transport=transport,
        verify=verify,
        follow_redirects=False,
    )
