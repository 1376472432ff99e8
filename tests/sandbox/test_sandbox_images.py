"""PNG pictures: valid files (decoded here with zlib and struct), deterministic, input-driven."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from batchrun.sandbox import Sandbox
from batchrun.sandbox.images import ImageCache, render
from batchrun.sandbox.outputs import image_size


@dataclass
class Decoded:
    width: int
    height: int
    pixels: bytes  # RGB rows without their filter bytes


def decode(png: bytes) -> Decoded:
    """Check a PNG the sandbox makes (8-bit RGB, filter 0) and return its pixels."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        data = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + data), f"bad CRC in {kind!r}"
        chunks.append((kind, data))
        offset += 12 + length
    assert offset == len(png)
    assert chunks[0][0] == b"IHDR"
    assert chunks[-1] == (b"IEND", b"")
    width, height, depth, color, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    assert (depth, color, compression, filtering, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    stride = 1 + 3 * width
    assert len(raw) == stride * height
    assert all(raw[y * stride] == 0 for y in range(height))
    pixels = b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))
    return Decoded(width, height, pixels)


def difference(one: bytes, two: bytes) -> float:
    """Mean absolute difference of two pixel buffers, 0 to 255."""
    return sum(abs(a - b) for a, b in zip(one, two, strict=True)) / len(one)


def test_a_render_is_a_valid_png_of_the_asked_size() -> None:
    decoded = decode(render(b"seed", 320, 200))
    assert (decoded.width, decoded.height) == (320, 200)
    assert len({decoded.pixels[i : i + 3] for i in range(0, len(decoded.pixels), 3)}) > 50


def test_the_same_seed_gives_the_same_bytes() -> None:
    assert render(b"seed", 64, 64) == render(b"seed", 64, 64)


def test_different_seeds_give_visibly_different_pictures() -> None:
    pictures = [decode(render(bytes([i]) * 8, 128, 128)).pixels for i in range(4)]
    for i, one in enumerate(pictures):
        for two in pictures[i + 1 :]:
            assert difference(one, two) > 20


def test_the_cache_serves_repeats_and_forgets_the_oldest() -> None:
    cache = ImageCache(capacity=2)
    first = cache.get(b"a", 64, 64)
    assert cache.get(b"a", 64, 64) is first
    cache.get(b"b", 64, 64)
    cache.get(b"c", 64, 64)
    assert cache.get(b"a", 64, 64) is not first
    assert cache.get(b"a", 64, 64) == first


@pytest.mark.parametrize(
    ("inputs", "size"),
    [
        ({}, (256, 256)),
        ({"width": 320, "height": 200}, (320, 200)),
        ({"width": 2048, "height": 64}, (1024, 64)),
        ({"aspect_ratio": "16:9"}, (256, 144)),
        ({"aspect_ratio": "2:3"}, (171, 256)),
        ({"aspect_ratio": "wide"}, (256, 256)),
    ],
)
def test_image_size_follows_the_input(inputs: dict[str, Any], size: tuple[int, int]) -> None:
    assert image_size(inputs, cap=1024) == size


def _picture(api: httpx.Client, http: httpx.Client, **inputs: Any) -> bytes:
    answer = api.post(
        "/v1/models/acme/painter/predictions", json={"input": inputs}, headers={"Prefer": "wait"}
    )
    [url] = answer.json()["output"]
    return http.get(url).content


def test_served_pictures_depend_on_the_input(api: httpx.Client, http: httpx.Client) -> None:
    one = _picture(api, http, prompt="a red fox", seed=1, width=96, height=64)
    again = _picture(api, http, prompt="a red fox", seed=1, width=96, height=64)
    other_seed = _picture(api, http, prompt="a red fox", seed=2, width=96, height=64)
    other_prompt = _picture(api, http, prompt="a blue whale", seed=1, width=96, height=64)
    assert one == again
    decoded = decode(one)
    assert (decoded.width, decoded.height) == (96, 64)
    assert difference(decoded.pixels, decode(other_seed).pixels) > 20
    assert difference(decoded.pixels, decode(other_prompt).pixels) > 20


def test_the_reserved_inputs_do_not_change_the_picture(
    api: httpx.Client, http: httpx.Client
) -> None:
    plain = _picture(api, http, prompt="a fox", seed=1)
    assert _picture(api, http, prompt="a fox", seed=1, sandbox_latency=0.01) == plain


def test_max_image_side_caps_served_pictures(
    make_sandbox: Callable[..., Sandbox], http: httpx.Client
) -> None:
    sandbox = make_sandbox(max_image_side=100)
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": "Bearer t"}) as api:
        decoded = decode(_picture(api, http, width=512, height=300))
    assert (decoded.width, decoded.height) == (100, 100)
