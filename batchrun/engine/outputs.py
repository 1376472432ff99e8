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
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from batchrun.api.objects import is_file_url
from batchrun.errors import DownloadError
from batchrun.planner.naming import (
    FileNamer,
    JobNamers,
    NamingError,
    checked_relative_path,
    extension,
    output_names,
    safe_piece,
)

__all__ = [
    "FileNamer",
    "JobNamers",
    "NamingError",
    "checked_relative_path",
    "decode_data_uri",
    "extension",
    "is_file_url",
    "output_names",
    "output_urls",
    "safe_piece",
]

_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*)(;base64)?,", re.DOTALL)


# Files one prediction may ask batchrun to download. Image models return a handful, a video
# model's frames a few hundred; an output listing 200,000 URLs is a hostile or broken server.
MAX_FILES_PER_PREDICTION = 1000


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
