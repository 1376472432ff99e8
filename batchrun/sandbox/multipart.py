"""A small multipart/form-data reader for POST /v1/files.

Starlette's form parser needs the python-multipart package, which batchrun does not depend on;
uploads here are whole bodies in memory anyway, so splitting on the boundary is enough.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message


@dataclass(frozen=True)
class Part:
    """One form field: its name, the filename and type its headers gave, and its bytes."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def boundary_of(content_type: str) -> str | None:
    """The boundary parameter of a multipart/form-data Content-Type, if it is one."""
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        return None
    boundary = message.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def parse(body: bytes, boundary: str) -> list[Part]:
    """The parts of a multipart body; raises ValueError if it is not well formed."""
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("the multipart body has no closing boundary")
    parts = []
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise ValueError("a multipart part is not framed by CRLF")
        head, separator, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not separator:
            head, data = chunk[2:-2], b""
        parts.append(_part(head.decode("utf-8", "replace"), data))
    return parts


def _part(head: str, data: bytes) -> Part:
    headers = Message()
    for line in head.split("\r\n"):
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip()] = value.strip()
    name = headers.get_param("name", header="content-disposition")
    filename = headers.get_param("filename", header="content-disposition")
    if not isinstance(name, str):
        raise ValueError("a multipart part has no name")
    content_type = headers.get("content-type")
    return Part(
        name=name,
        filename=filename if isinstance(filename, str) else None,
        content_type=content_type if isinstance(content_type, str) else None,
        data=data,
    )
