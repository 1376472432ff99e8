"""The sandbox on loopback: uvicorn in a background thread with its own event loop.

    with Sandbox(SandboxConfig(latency=0.05)) as sandbox:
        client = replicate.Client(api_token="x", base_url=sandbox.base_url)

The listening sockets are bound and listening before `start` returns (port 0 picks a free
port), and `stop` releases held `Prefer: wait` requests and closes every connection at once
instead of waiting for them, so a test's teardown takes milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from batchrun.errors import UsageError
from batchrun.sandbox.app import SandboxApp
from batchrun.sandbox.config import SandboxConfig
from batchrun.sandbox.store import SandboxState

BACKLOG = 4096
KEEP_ALIVE = 30
_START_TIMEOUT = 30.0
_DRAIN_TIMEOUT = 0.5


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _listen(host: str, port: int) -> socket.socket:
    # Not socket.create_server: its protocol number is 0, and asyncio only sets TCP_NODELAY on
    # accepted sockets whose protocol says TCP; without it every answer waits 40 ms for an ACK.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    return sock


class Sandbox:
    """The emulator on loopback, in a background thread with its own event loop.

    Port 0 picks a free port. `second_origin` serves output files from another port (so a
    client's token handling per origin can be checked); `files_tls=(cert, key)` serves them
    over https. After `start`: `base_url` (no /v1), `files_base_url`, and `state`.
    """

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        second_origin: bool = False,
        files_port: int = 0,
        files_tls: tuple[str | Path, str | Path] | None = None,
        access_log: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = SandboxState(config, clock=clock)
        self.app = SandboxApp(self.state)
        self.host = host
        self.port = port
        self.second_origin = second_origin or files_tls is not None
        self.files_port = files_port
        self.files_tls = files_tls
        self.access_log = access_log
        self.base_url = ""
        self.files_base_url = ""
        self._sockets: list[socket.socket] = []
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def start(self) -> Sandbox:
        """Listen and serve; returns once the sockets accept connections."""
        if self._thread is not None:
            raise UsageError("this sandbox is already running")
        api = _listen(self.host, self.port)
        self._sockets = [api]
        self.port = api.getsockname()[1]
        self.base_url = f"http://{_url_host(self.host)}:{self.port}"
        self.files_base_url = self.base_url
        if self.second_origin:
            files = _listen(self.host, self.files_port)
            self._sockets.append(files)
            self.files_port = files.getsockname()[1]
            scheme = "https" if self.files_tls else "http"
            self.files_base_url = f"{scheme}://{_url_host(self.host)}:{self.files_port}"
            self.state.configure(files_base_url=self.files_base_url)
        self._thread = threading.Thread(target=self._run, name="batchrun-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT) or self._error is not None:
            self.stop()
            raise UsageError(f"the sandbox could not start: {self._error}")
        return self

    def stop(self) -> None:
        """Close every connection and stop serving (idempotent)."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is not None and loop is not None and stop is not None and thread.is_alive():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
            thread.join(_START_TIMEOUT)
        for sock in self._sockets:
            sock.close()
        self._thread = None

    def configure(self, **changes: Any) -> None:
        """Change settings at runtime (thread-safe); UsageError names a setting that cannot work."""
        self.state.configure(**changes)

    def bump_version(self, owner: str, name: str) -> str:
        """Give `owner/name` a new latest version; return its id."""
        return self.state.bump_version(owner, name)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported by start(); the thread must not die silently
            self._error = error
        finally:
            self._ready.set()

    def _uvicorn_config(self, tls: tuple[str | Path, str | Path] | None) -> uvicorn.Config:
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=self.access_log,
            http="h11",
            ws="none",
            backlog=BACKLOG,
            timeout_keep_alive=KEEP_ALIVE,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
        )
        config.load()
        return config

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        servers = []
        for index, sock in enumerate(self._sockets):
            config = self._uvicorn_config(self.files_tls if index == 1 else None)
            server = uvicorn.Server(config)
            server.lifespan = config.lifespan_class(config)
            await server.startup(sockets=[sock])
            servers.append(server)
        self._ready.set()
        await self._stop.wait()
        await self._shutdown(servers)

    async def _shutdown(self, servers: list[uvicorn.Server]) -> None:
        # uvicorn's own shutdown polls every 0.1 s and waits for held requests to finish;
        # here the held waits are released at once and stragglers are cut off.
        self.state.wake_all()
        for server in servers:
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
        tasks = [task for server in servers for task in server.server_state.tasks]
        if tasks:
            await asyncio.wait(tasks, timeout=_DRAIN_TIMEOUT)
        for server in servers:
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.close()
            for task in server.server_state.tasks:
                task.cancel()
