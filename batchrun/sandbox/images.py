"""Procedural PNG pictures: a diagonal gradient and a few shapes, all derived from a digest.

Rows are built with bytes slicing (one slice per row for the gradient, one per row and shape
for the shapes), never pixel by pixel in Python, so a 256x256 image costs about a millisecond.
The PNG is encoded by hand (signature, IHDR, one IDAT, IEND) with zlib and struct.
"""

from __future__ import annotations

import hashlib
import math
import struct
import threading
import zlib
from collections import OrderedDict

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPE_RGB = 2


def encode_png(width: int, height: int, raw_rows: bytes) -> bytes:
    """A PNG of 8-bit RGB rows, each already prefixed with its filter byte."""
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPE_RGB, 0, 0, 0)
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(raw_rows, 1)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


class _Bytes:
    """An endless stream of pseudo-random bytes from a digest, read a few at a time."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._pool = b""
        self._counter = 0

    def take(self, count: int) -> bytes:
        while len(self._pool) < count:
            block = hashlib.sha256(self._seed + self._counter.to_bytes(4, "big")).digest()
            self._pool += block
            self._counter += 1
        out, self._pool = self._pool[:count], self._pool[count:]
        return out

    def number(self, low: int, high: int) -> int:
        """A whole number in [low, high]."""
        return low + int.from_bytes(self.take(4), "big") % (high - low + 1)

    def color(self) -> bytes:
        return self.take(3)


def _gradient(stops: list[bytes], length: int) -> bytearray:
    """`length` RGB pixels blending through `stops` in equal spans, one channel at a time."""
    strip = bytearray(length * 3)
    spans = len(stops) - 1
    bounds = [length * k // spans for k in range(spans + 1)]
    for channel in range(3):
        values = bytearray()
        for k in range(spans):
            a, b = stops[k][channel], stops[k + 1][channel]
            size = bounds[k + 1] - bounds[k]
            values += bytes((a * (size - j) + b * j) // size for j in range(size))
        strip[channel::3] = values
    return strip


def render(seed: bytes, width: int, height: int) -> bytes:
    """A width x height PNG whose colours and shapes all derive from `seed`."""
    rng = _Bytes(seed)
    stride = 1 + 3 * width
    strip = _gradient([rng.color() for _ in range(3)], width + height)
    raw = bytearray(stride * height)
    for y in range(height):
        # Pixel (x, y) takes strip[x + y]: a diagonal gradient at one slice per row.
        raw[y * stride + 1 : (y + 1) * stride] = strip[y * 3 : (y + width) * 3]
    side = min(width, height)
    for _ in range(rng.number(2, 5)):
        color = rng.color()
        cx, cy = rng.number(0, width - 1), rng.number(0, height - 1)
        size = rng.number(max(2, side // 12), max(3, side // 3))
        if rng.number(0, 2):
            _disc(raw, stride, width, height, cx, cy, size, color)
        else:
            _box(raw, stride, width, height, cx, cy, size, rng.number(size // 3, size), color)
    return encode_png(width, height, bytes(raw))


def _disc(
    raw: bytearray, stride: int, width: int, height: int, cx: int, cy: int, r: int, color: bytes
) -> None:
    for y in range(max(0, cy - r), min(height, cy + r + 1)):
        half = math.isqrt(r * r - (y - cy) ** 2)
        x0, x1 = max(0, cx - half), min(width, cx + half + 1)
        if x1 > x0:
            start = y * stride + 1 + x0 * 3
            raw[start : start + (x1 - x0) * 3] = color * (x1 - x0)


def _box(
    raw: bytearray,
    stride: int,
    width: int,
    height: int,
    cx: int,
    cy: int,
    half_w: int,
    half_h: int,
    color: bytes,
) -> None:
    x0, x1 = max(0, cx - half_w), min(width, cx + half_w)
    if x1 <= x0:
        return
    row = color * (x1 - x0)
    for y in range(max(0, cy - half_h), min(height, cy + half_h)):
        start = y * stride + 1 + x0 * 3
        raw[start : start + len(row)] = row


class ImageCache:
    """The most recently rendered images, so repeated downloads cost nothing (thread-safe)."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._items: OrderedDict[tuple[bytes, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, seed: bytes, width: int, height: int) -> bytes:
        """The PNG for these arguments, rendered on a miss."""
        key = (seed, width, height)
        with self._lock:
            png = self._items.get(key)
            if png is not None:
                self._items.move_to_end(key)
                return png
        png = render(seed, width, height)
        with self._lock:
            self._items[key] = png
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
        return png
