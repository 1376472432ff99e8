"""What a prediction's output holds, and where its files go.

Outputs come in every shape: a URL, a list of URLs, a dict of URLs and numbers, plain text, or a
language model's list of tokens. Every http(s) URL (and data URI) in it is a file to fetch now,
before the link expires; a list of strings with no URL in it is a token stream, joined into text.

File names come from the spec's `files` template. Every piece substituted into it (the job, the
key, a matrix value, the extension from a server's URL) is made safe first: no separators, no
`..`, nothing absolute, no control characters, bounded length. The template's own literal `/`
make folders.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import unicodedata
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from batchrun.errors import DownloadError
from batchrun.spec.template import Template

_UNSAFE = re.compile(r"[^\w.\-+=,@ ]+")
_SPACES = re.compile(r"\s+")
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
_PIECE_LIMIT = 80
_COMPONENT_LIMIT = 200
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*)(;base64)?,", re.DOTALL)

# Extensions for data URIs, whose "name" is only their media type.
_MEDIA_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
    "text/plain": ".txt",
    "application/json": ".json",
}


def is_file_url(value: object) -> bool:
    """True for the strings batchrun downloads: http(s) URLs and data URIs."""
    if not isinstance(value, str):
        return False
    head = value[:8].lower()
    return head.startswith(("http://", "https://", "data:"))


def output_urls(output: Any) -> list[str]:
    """Every file URL in an output, in order of appearance, each once."""
    seen: dict[str, None] = {}
    for value in _walk(output):
        if is_file_url(value):
            seen.setdefault(value, None)
    return list(seen)


def _walk(value: Any) -> Iterator[Any]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def normalize_output(output: Any) -> Any:
    """A language model's token list joined into its text; any other output as it is."""
    if (
        isinstance(output, list)
        and output
        and all(isinstance(item, str) for item in output)
        and not any(is_file_url(item) for item in output)
    ):
        return "".join(output)
    return output


def extension(url: str) -> str:
    """The file extension a URL names (`.png`), or "" when it names none that is safe."""
    if url[:5].lower() == "data:":
        match = _DATA_URI.match(url)
        media = (match.group(1) or "").lower() if match else ""
        return _MEDIA_EXTENSIONS.get(media, "")
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    suffix = PurePosixPath(name).suffix.lower()
    return suffix if _EXTENSION.match(suffix) else ""


def safe_piece(value: Any) -> str:
    """One substituted value made safe to be part of a file name."""
    text = value if isinstance(value, str) else _text(value)
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    text = _UNSAFE.sub("_", text)
    text = _SPACES.sub("_", text).strip("._ ")
    if not text:
        return "_"
    if len(text) > _PIECE_LIMIT:
        # Truncated names must stay distinct: keep a hash of the whole value.
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        text = f"{text[: _PIECE_LIMIT - 9]}~{digest}"
    return text


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class FileNamer:
    """Maps (prediction, output index, URL) to a safe path relative to the run folder."""

    def __init__(self, template: str) -> None:
        self.template = template
        self._template = Template.compile(template)

    def path_for(
        self, *, job: str, key: str, index: int, url: str, repeat: int, vars: Mapping[str, Any]
    ) -> str:
        """The relative posix path for one output file; DownloadError if it would be unsafe."""
        values: dict[str, Any] = {name: _safe_tree(value) for name, value in vars.items()}
        values.update(
            job=safe_piece(job),
            key=safe_piece(key),
            index=str(index),
            ext=extension(url),
            repeat=str(repeat),
        )
        rendered = str(self._template.render(values))
        return checked_relative_path(rendered)


def _safe_tree(value: Any) -> Any:
    # Mappings stay mappings so `${row.name}` still finds its field; every leaf becomes safe.
    if isinstance(value, Mapping):
        return {str(key): _safe_tree(item) for key, item in value.items()}
    return safe_piece(value)


def checked_relative_path(path: str) -> str:
    """`path` if it is a relative path inside the run folder with sane components."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if path.startswith("/") or not parts:
        raise DownloadError(f"the files template gives an unusable path {path!r}")
    for part in parts:
        if part == ".." or "\\" in part or "\x00" in part:
            raise DownloadError(f"the files template gives an unsafe path {path!r}")
        if len(part.encode()) > _COMPONENT_LIMIT:
            raise DownloadError(f"the files template gives a name too long for a disk: {part!r}")
    return "/".join(parts)


def decode_data_uri(uri: str) -> bytes:
    """The bytes a data URI holds; DownloadError if it is malformed."""
    match = _DATA_URI.match(uri)
    if match is None:
        raise DownloadError("a data URI in the output is malformed", url=uri[:40])
    payload = uri[match.end() :]
    try:
        if match.group(3):
            return base64.b64decode(payload, validate=False)
        return unquote(payload).encode()
    except (binascii.Error, ValueError):
        raise DownloadError("a data URI in the output is not valid base64", url=uri[:40]) from None
