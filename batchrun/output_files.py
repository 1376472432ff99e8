"""What in a prediction's output is a file: its http(s) URLs and data URIs, found by one walk.

Outputs come in every shape: a URL, a list of URLs, a dict of URLs and numbers, plain text, or a
language model's list of tokens. Every http(s) URL and data URI in one is a file to fetch before
its link expires (`output_urls`); a list of strings with none of them in it is a token stream,
read as its joined text (`joined_output`). A data URI is its own file: a record keeps only its
head (`recorded_url`). Every layer may use this module: the engine downloads what it finds, the
manifest matches files to it, the planner names them, the report shows the text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from batchrun.errors import DownloadError

# A record keeps a data URI by its head only (the whole of it is the file): this many characters.
DATA_URI_HEAD = 64
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*)(;base64)?,", re.DOTALL)


def is_file_url(value: object) -> bool:
    """True for the strings batchrun downloads: http(s) URLs and data URIs."""
    if not isinstance(value, str):
        return False
    return value[:8].lower().startswith(("http://", "https://", "data:"))


def is_data_uri(url: str) -> bool:
    """Whether a file URL is a data URI (the file is in it) rather than a link to fetch."""
    return url[:5].lower() == "data:"


def recorded_url(url: str) -> str:
    """A file's URL as its record keeps it: a data URI by its head, any other URL whole."""
    return url[:DATA_URI_HEAD] if is_data_uri(url) else url


def walk(output: Any, place: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf of an output with its place: mapping keys and list positions, outermost first."""
    if isinstance(output, Mapping):
        for key, item in output.items():
            yield from walk(item, (*place, str(key)))
    elif isinstance(output, list | tuple):
        for position, item in enumerate(output):
            yield from walk(item, (*place, str(position)))
    else:
        yield place, output


def output_urls(output: Any) -> list[str]:
    """Every file URL in an output, in order of appearance, each once."""
    seen: dict[str, None] = {}
    for _, value in walk(output):
        if is_file_url(value):
            seen.setdefault(value, None)
    return list(seen)


def data_uri_media(uri: str) -> str:
    """The media type a data URI declares (`image/png`), lower case; "" if none."""
    match = _DATA_URI.match(uri)
    return (match.group(1) or "").lower() if match else ""


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


def joined_output(output: Any) -> Any:
    """A language model's token list joined into its text; any other output as it is.

    The manifest keeps the output as the API returned it; what people read (the report, status,
    exports) is this.
    """
    if (
        isinstance(output, list)
        and output
        and all(isinstance(item, str) for item in output)
        and not any(is_file_url(item) for item in output)
    ):
        return "".join(output)
    return output
