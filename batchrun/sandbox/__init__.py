"""The sandbox: a Replicate-compatible emulator for trying specs and for the test suite.

It serves the endpoints batchrun uses under /v1 with Replicate's JSON shapes, output files
under /delivery, and control endpoints under /_sandbox (see `admin.py`). Any `owner/name`
exists. Image models (the default) return PNGs made from the input; models whose name contains
llama, gpt, mistral, qwen, gemma, chat, llm or text (or owned by `meta`) return token lists.

Reserved inputs, for tests (they do not change the output's content):

    sandbox_status    failed | canceled | aborted | succeeded: end with this status
    sandbox_error     the error text of a failed (or aborted) prediction
    sandbox_latency   seconds this prediction takes (instead of latency ± jitter)
    sandbox_output    text | tokens | dict | number | images | none: the output's shape
                      (dict is {"image": url, "caption": str, "score": float})

Use it as `Sandbox(SandboxConfig(...))` on loopback (`server.py`), or in process with
`httpx.ASGITransport(app=create_app(config))`.
"""

import importlib
from typing import TYPE_CHECKING, Any

from batchrun.sandbox.help import RESERVED_INPUTS_HELP

if TYPE_CHECKING:
    from batchrun.sandbox.app import SandboxApp, create_app
    from batchrun.sandbox.config import SandboxConfig
    from batchrun.sandbox.server import Sandbox
    from batchrun.sandbox.store import SandboxState

# Imported when first used: `batchrun --help` reads the help above without starlette and uvicorn.
_LAZY = {
    "SandboxApp": "batchrun.sandbox.app",
    "create_app": "batchrun.sandbox.app",
    "SandboxConfig": "batchrun.sandbox.config",
    "Sandbox": "batchrun.sandbox.server",
    "SandboxState": "batchrun.sandbox.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'batchrun.sandbox' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "RESERVED_INPUTS_HELP",
    "Sandbox",
    "SandboxApp",
    "SandboxConfig",
    "SandboxState",
    "create_app",
]
