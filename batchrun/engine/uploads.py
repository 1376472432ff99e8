"""Local files in an input (`{file: path}`): sent inline as data URIs or uploaded once.

Replicate takes a file as a data URI up to 256 KB and asks for an HTTP URL above that; the Files
API gives one. Within a run each file is uploaded at most once, however many predictions use it:
uploads are cached by content hash, and concurrent users of one file wait for the same upload.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping
from typing import Any, Protocol

import anyio

from batchrun import safefs
from batchrun.api.objects import UploadedFile
from batchrun.errors import BatchrunError
from batchrun.planner.expand import FileInput

INLINE_LIMIT = 256 * 1024
# Bytes of one `{file:}` input, read whole to send: Replicate's Files API takes files up to
# 100 MiB; a larger one (or a file that keeps growing) would fail after filling memory.
MAX_INPUT_FILE_BYTES = 100 << 20


class Uploader(Protocol):
    async def upload(
        self, content: bytes | Any, *, filename: str, content_type: str
    ) -> UploadedFile: ...


def content_type(file: FileInput) -> str:
    """The MIME type a file's name suggests, or application/octet-stream."""
    guessed, _ = mimetypes.guess_type(file.path.name)
    return guessed or "application/octet-stream"


class InputFiles:
    """Turns FileInputs in an input into what the API takes, caching uploads by content."""

    def __init__(self, client: Uploader, *, inline_limit: int = INLINE_LIMIT) -> None:
        self._client = client
        self._inline_limit = inline_limit
        self._urls: dict[str, str] = {}
        self._pending: dict[str, anyio.Event] = {}
        self.uploads = 0

    async def resolve(self, value: Any) -> Any:
        """`value` with every FileInput replaced by a data URI or an uploaded file's URL."""
        if isinstance(value, FileInput):
            return await self._resolve_file(value)
        if isinstance(value, Mapping):
            return {key: await self.resolve(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [await self.resolve(item) for item in value]
        return value

    async def _resolve_file(self, file: FileInput) -> str:
        url = self._urls.get(file.sha256)
        if url is not None:
            # Uploaded already: no need to read it again for each key that sends it, only to
            # say so if it has gone since.
            await anyio.to_thread.run_sync(_check_readable, file)
            return url
        data = await anyio.to_thread.run_sync(_read, file)
        if len(data) <= self._inline_limit:
            encoded = base64.b64encode(data).decode("ascii")
            return f"data:{content_type(file)};base64,{encoded}"
        while file.sha256 not in self._urls:
            pending = self._pending.get(file.sha256)
            if pending is not None:
                await pending.wait()
                continue
            done = self._pending[file.sha256] = anyio.Event()
            try:
                uploaded = await self._client.upload(
                    data, filename=file.path.name, content_type=content_type(file)
                )
                self._urls[file.sha256] = uploaded.url
                self.uploads += 1
            finally:
                del self._pending[file.sha256]
                done.set()
        return self._urls[file.sha256]


class InputFileError(BatchrunError):
    """A local input file that was there when the spec loaded, and cannot be read now."""


def _read(file: FileInput) -> bytes:
    try:
        return safefs.read_regular(file.path, MAX_INPUT_FILE_BYTES, follow=True)
    except OSError as error:
        raise _unreadable(file, error) from None


def _check_readable(file: FileInput) -> None:
    try:
        safefs.open_regular(file.path, None, follow=True).close()
    except OSError as error:
        raise _unreadable(file, error) from None


def _unreadable(file: FileInput, error: OSError) -> InputFileError:
    return InputFileError(f"cannot read the input file {file.relpath}: {error.strerror or error}")
