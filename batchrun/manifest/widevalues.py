"""A variable's values as the table tells them apart (`value_key`, and its 64-bit `digest`),
and the values of a variable too many to keep (`Wide`): a digest each, the rows holding them
placed once all are in, a bucket at a time (`place_held`)."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Hashable, Mapping
from typing import Any, cast

from batchrun import jsontext


def value_key(raw: Any) -> Hashable:
    """What tells a variable's values apart: their canonical JSON, so `1`, `1.0`, `true` and
    `"1"` are four values, as they are four different inputs to a model. Text and integers
    (most values) are their own key; the rest a tuple, which equals no text and no number."""
    kind = type(raw)
    if kind is str or kind is int:
        itself: Hashable = raw
        return itself
    if isinstance(raw, str):
        return str(raw)
    if isinstance(raw, bool):  # before int: True is an int, and equals 1
        return ("b", raw)
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float):  # 1.0 equals 1: its repr tells them (and -0.0) apart
        return ("f", repr(raw))
    return ("j", _canonical(raw))


# `json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))`, its encoder
# built once, not per value (a mapping per row).
_canonical = jsontext.encoder(separators=(",", ":"), sort_keys=True)


def digest(key: Hashable) -> int:
    """A value's `value_key` as 64 bits (signed, for an int64 array): what tells a `Wide`
    variable's values apart. Two of a million values share one with odds of 1 in 30 million."""
    if type(key) is str:
        return digest_of(b"s" + key.encode("utf-8", "surrogatepass"))
    if type(key) is int:
        return digest_of(b"i" + str(key).encode())
    tag, text = cast(tuple[str, Any], key)  # ("b", a bool) or (tag, a text)
    return digest_of(tag.encode() + str(text).encode("utf-8", "surrogatepass"))


def digest_of(data: bytes) -> int:
    """`digest` of a `value_key`'s bytes."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)


def is_number(raw: Any) -> bool:
    """Whether a value is a JSON number (an int or a float, not a bool): what the report orders
    as a number (`report.layout.all_values`), and a metric an export takes."""
    kind = type(raw)
    return kind is float or kind is int or (isinstance(raw, int | float) and kind is not bool)


def holds_mapping(raw: Any) -> bool:
    """Whether a value is a mapping `flat_vars` spreads over columns (not empty)."""
    return isinstance(raw, Mapping) and bool(raw)


# The rows appended to a variable of many values (`Wide`, or more than WIDE_VALUES integers)
# are placed among its values once all are in, a bucket of values at a time: a dict of this
# many, not of a million (100 MB while a million lines are parsed).
SETTLED_PER_BUCKET = 1 << 17


def place_held(known: array[int], held: array[int]) -> tuple[array[int], array[int]]:
    """The place of each value `held` (an int64: an integer itself, or a digest) among those
    `known` (place → value; place 0 a stand-in), in order, a value not known appended to
    `known` as it is first held; and the positions in `held` of those appended. A bucket of
    SETTLED_PER_BUCKET values at a time (by the value modulo the buckets)."""
    buckets = max(1, (len(known) + len(held)) // SETTLED_PER_BUCKET)
    # Per value held: its place among those known (> 0), or -(1 + the first held like it).
    found = array("q", bytes(8 * len(held)))
    known_in: list[array[int]] = [array("I") for _ in range(buckets)]
    held_in: list[array[int]] = [array("I") for _ in range(buckets)]
    for place in range(1, len(known)):
        known_in[known[place] % buckets].append(place)
    for at, value in enumerate(held):
        held_in[value % buckets].append(at)
    for bucket in range(buckets):
        first: dict[int, int] = {known[place]: place for place in known_in[bucket]}
        for at in held_in[bucket]:
            found[at] = first.setdefault(held[at], -1 - at)
    del known_in, held_in
    appended = array("I")
    for at, place in enumerate(found):
        if place == -1 - at:  # the first of its value: a new place
            found[at] = len(known)
            known.append(held[at])
            appended.append(at)
        elif place < 0:  # the first like it was placed above
            found[at] = found[-1 - place]
    return found, appended


class Wide:
    """The values of a variable with more than WIDE_VALUES of them, not kept: per place (the
    place 0, UNSET, a stand-in) the digest of the value, the number it sorts as and whether it
    is one, and whether any value is a mapping. A value shown is read back from the line of the
    first row holding it (`KeyTable.value_at`).

    Rows appended are held (`hold`: the digest, number and kind of each row's value) and
    placed once all are in (`settle`), a bucket of digests at a time, so that no dict of every
    value is kept while a million lines are parsed."""

    def __init__(self) -> None:
        self.digests = array("q", [0])
        self.numbers = array("d", [0.0])
        self.numeric = array("B", [0])
        self.mapping = False
        self._held = (array("q"), array("d"), array("B"))  # per row held, not yet placed

    @classmethod
    def of(cls, raws: list[Any] | array[int]) -> tuple[Wide, array[int]]:
        """The values kept until now (place 0 UNSET, or a stand-in), as digests; and where
        each now is (of place 1 on): its place, but for two that share a digest (`digest`'s
        odds), which become one, and every value after them a place lower."""
        made = cls()
        for raw in raws[1:]:
            made.hold(raw)
        return made, made.settle()

    def __len__(self) -> int:
        return len(self.digests)

    def hold(self, raw: Any) -> None:
        """The value of the next row that sets the variable, placed by `settle`."""
        digests, numbers, numeric = self._held
        kind = type(raw)
        if kind is str or kind is dict:  # most values held: a text or a row of its own per key
            if kind is str:  # `digest(value_key(raw))`, without the steps between
                digests.append(digest_of(b"s" + raw.encode("utf-8", "surrogatepass")))
            else:
                digests.append(digest_of(b"j" + _canonical(raw).encode("utf-8", "surrogatepass")))
                if raw:
                    self.mapping = True
            numeric.append(0)
            numbers.append(0.0)
            return
        digests.append(digest(value_key(raw)))
        number = is_number(raw)
        numeric.append(number)
        numbers.append(_float(raw) if number else 0.0)
        if not self.mapping and holds_mapping(raw):
            self.mapping = True

    def hold_digest(self, digested: int, number: float, numeric: int) -> None:
        """A value held as its digest, the number it sorts as and whether it is one (another
        `Wide`'s, merged: `Values.extend`)."""
        digests, numbers, kinds = self._held
        digests.append(digested)
        numbers.append(number)
        kinds.append(numeric)

    def settle(self) -> array[int]:
        """The place of each value held, in order (a value first held: a new place, after
        those before), and none held any longer."""
        held, numbers, numeric = self._held
        self._held = (array("q"), array("d"), array("B"))
        found, appended = place_held(self.digests, held)
        for at in appended:
            self.numbers.append(numbers[at])
            self.numeric.append(numeric[at])
        return found


def _float(raw: int | float) -> float:
    """What a number sorts as (`float`, as the report sorts it); past a float's range, its
    infinity."""
    try:
        return float(raw)
    except OverflowError:
        return math.inf if raw > 0 else -math.inf
