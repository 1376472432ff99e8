"""The multipart/form-data reader behind POST /v1/files."""

from __future__ import annotations

import re

import httpx
import pytest

from batchrun.sandbox.multipart import Part, boundary_of, parse


def encoded(files: dict[str, tuple[str, bytes, str]], data: dict[str, str]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", files=files, data=data)
    return request.read(), request.headers["content-type"]


def test_parts_come_back_byte_for_byte() -> None:
    payload = b"\r\n--\r\n\x00\xff" * 100
    body, content_type = encoded(
        {"content": ("a b.bin", payload, "application/x-thing")}, {"metadata": '{"k": 1}'}
    )
    boundary = boundary_of(content_type)
    assert boundary is not None
    assert parse(body, boundary) == [
        Part("metadata", None, None, b'{"k": 1}'),
        Part("content", "a b.bin", "application/x-thing", payload),
    ]


def test_boundary_of_other_types_is_none() -> None:
    assert boundary_of("application/json") is None
    assert boundary_of("multipart/form-data") is None
    assert boundary_of('multipart/form-data; boundary="abc"') == "abc"


NAMED = b"--abc\r\nContent-Disposition: form-data; name=x\r\n\r\ny\r\n"
UNNAMED = b"--abc\r\nContent-Disposition: form-data\r\n\r\ny\r\n--abc--"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (NAMED, "the multipart body has no closing boundary"),
        (UNNAMED, "a multipart part has no name"),
        (b"--abcjunk--abc--", "a multipart part is not framed by CRLF"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        parse(body, "abc")
