"""The values a table's rows share, each kept once: `Interned` ids, a variable's `Values`."""

from __future__ import annotations

import json
from array import array
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

H = TypeVar("H", bound=Hashable)


class Interned(Generic[H]):
    """Values many rows share (job ids, APIs, versions), each kept once, a row holding its
    place."""

    def __init__(self, first: H) -> None:
        self.values: list[H] = [first]
        self._places: dict[H, int] = {first: 0}
        self._last: tuple[H, int] = (first, 0)  # most lines repeat the line before's

    @classmethod
    def of(cls, values: list[H]) -> Interned[H]:
        """Values interned already (a table cache's), in their places."""
        made = cls(values[0])
        made.values = list(values)
        made._places = {value: place for place, value in enumerate(values)}
        return made

    def place(self, value: H) -> int:
        last, place = self._last
        if value is last or value == last:
            return place
        found = self._places.get(value)
        if found is None:
            found = self._places[value] = len(self.values)
            self.values.append(value)
        self._last = (value, found)
        return found


class _Unset:
    """What a row holds for a variable its line does not set (not JSON's null, which is a
    value)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


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
    canonical = json.dumps(raw, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return ("j", canonical)


_INT64 = (-(2**63), 2**63 - 1)
WIDEST = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}  # the largest place each array holds


class Values:
    """One variable in every row: each distinct value kept once (`raws`, in the order rows
    first show them; place 0 is UNSET, a row that does not set it), and per row its place.

    What is per row is its place (`places`): a byte while the variable has at most 255 values,
    then two bytes, then four. A variable that takes a value of its own in each of a million
    keys (a seed, an index) keeps a million values: while they are all integers, in an array
    of 8 bytes each (`raws` is then an array, its place 0 a stand-in), not as a list of 36-byte
    int objects.
    """

    def __init__(self, rows: int = 0) -> None:
        self.raws: list[Any] | array[int] = array("q", [0])
        self.places: array[int] = array("B", bytes(rows))  # the rows before it appeared
        self._at: dict[Hashable, int] | None = {}  # None: made again when a row comes

    def append(self, raw: Any) -> None:
        """The next row's value (UNSET: the row does not set the variable)."""
        if raw is UNSET:
            self.places.append(0)
            return
        key = value_key(raw)
        at = self._at
        if at is None:  # settled, or read from the table kept on disk: rows appended after
            at = self._at = {value_key(raw): place for place, raw in enumerate(self.raws) if place}
        place = at.get(key)
        if place is None:
            place = at[key] = len(self.raws)
            raws = self.raws
            if type(raws) is array and not (type(raw) is int and _INT64[0] <= raw <= _INT64[1]):
                raws = self.raws = [UNSET, *raws[1:]]  # the first value that is not an int64
            raws.append(raw)
            if place > WIDEST[self.places.typecode]:
                self.places = array("I" if place > WIDEST["H"] else "H", self.places)
        self.places.append(place)

    def settle(self) -> None:
        """Every row is in: the lookup from value to place is no longer needed."""
        self._at = None
