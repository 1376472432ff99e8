"""Key → the row of its newest line, each key kept as the number its 16 hex digits spell."""

from __future__ import annotations

import bisect
import itertools
import operator
import re
from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# The keys batchrun makes (planner/keys.py): 16 lowercase hex digits, kept as numbers.
_HEX_KEY = re.compile(r"[0-9a-f]{16}")
# `settle` sorts the rows by key a bucket at a time, a bucket per value of the keys' top bits:
# one sort of every row made a list of a million row numbers and another of their keys, about
# 60 MB at once (the peak of a first read); keys are sha256 prefixes, spread evenly, so each of
# 256 buckets holds about a 256th of the rows (4 bytes each while they wait).
SORT_BUCKET_BITS = 8


class KeyRows(Mapping[str, int]):
    """Key → the row of its newest line, iterated in the order keys were first recorded.

    Not a dict: a dict of a million 16-hex-digit keys holds a string, an entry and a row
    number object per key, about 180 bytes; here a key is the 8-byte number its hex digits
    spell, in sorted arrays searched by bisection (a key batchrun did not make, from an edited
    manifest, is kept as it is, in a dict of its own).
    """

    def __init__(self) -> None:
        self.numbers: array[int] = array("Q")  # each row's key, as a number (0: an odd key)
        self._sorted: array[int] = array("Q")  # the keys' numbers, ascending
        self._starts: array[int] | None = None  # where each run of 16 top bits starts in it
        self._rows: array[int] = array("I")  # the newest row of each, in the same order
        self._order: array[int] = array("I")  # the newest rows, keys in first-seen order
        self._odd: dict[str, int] = {}  # a key batchrun does not make → its newest row
        self._odd_key: dict[int, str] = {}  # and back, for every row of one

    def add(self, key: str) -> None:
        """The key of the next row (the line just read)."""
        if _HEX_KEY.fullmatch(key):
            self.numbers.append(int(key, 16))
        else:
            self._odd_key[len(self.numbers)] = key
            self.numbers.append(0)

    def odd_keys(self) -> dict[int, str]:
        """Row → key, of the rows whose key batchrun did not make (not yet settled)."""
        return self._odd_key

    def extend(self, numbers: array[int], odd_keys: Mapping[int, str]) -> None:
        """The keys of rows added after these (`numbers`, `odd_keys`: as `add` made them in
        another process, counting its rows from 0), not yet settled."""
        base = len(self.numbers)
        self.numbers.extend(numbers)
        self._odd_key.update((base + row, key) for row, key in odd_keys.items())

    def settle(self, wins: Callable[[int, int], bool]) -> None:
        """Each key's newest row (`wins(known, row)`: the later row supersedes), and the
        first-seen order, once every line is read."""
        numbers, odd = self.numbers, self._odd_key
        self._sorted, self._rows, self._odd, self._starts = array("Q"), array("I"), {}, None
        first_seen = array("i", [-1]) * len(numbers)  # first row of a key → its newest row
        for order in _in_order(numbers, odd):
            at = 0
            while at < len(order):
                first = newest = order[at]
                number = numbers[first]
                at += 1
                while at < len(order) and numbers[order[at]] == number:
                    if wins(newest, order[at]):
                        newest = order[at]
                    at += 1
                self._sorted.append(number)
                self._rows.append(newest)
                first_seen[first] = newest
        firsts: dict[str, int] = {}
        for row, key in odd.items():
            first = firsts.setdefault(key, row)
            known = self._odd.get(key)
            self._odd[key] = row if known is None or wins(known, row) else known
            first_seen[first] = self._odd[key]
        self._order = array("I", (row for row in first_seen if row >= 0))

    def restore(
        self, arrays: Mapping[str, array[int]], odd: Any, odd_rows: Any, count: int
    ) -> bool:
        """Take the rows a table cache kept (settled, for `count` rows); False when they do
        not hold together (an index out of bounds, keys out of order), and nothing is taken."""
        numbers, ordered, rows, order = (
            arrays["numbers"],
            arrays["_sorted"],
            arrays["_rows"],
            arrays["_order"],
        )
        if not isinstance(odd, dict) or not isinstance(odd_rows, list):
            return False
        odd_key = {}
        for row, key in odd_rows:
            if type(row) is not int or not 0 <= row < count or type(key) is not str:
                return False
            odd_key[row] = key
        if not all(type(row) is int and 0 <= row < count for row in odd.values()):
            return False
        if len(numbers) != count or len(ordered) != len(rows):
            return False
        if len(order) != len(rows) + len(odd) or (order and max(order) >= count):
            return False
        if rows and max(rows) >= count:
            return False
        if not all(map(operator.lt, ordered, itertools.islice(ordered, 1, None))):
            return False
        if not all(map(operator.eq, map(numbers.__getitem__, rows), ordered)):
            return False
        self.numbers, self._sorted, self._rows, self._order = numbers, ordered, rows, order
        self._starts = None
        self._odd, self._odd_key = dict(odd), odd_key
        return True

    def key_of(self, row: int) -> str:
        odd = self._odd_key.get(row)
        return odd if odd is not None else f"{self.numbers[row]:016x}"

    def get(self, key: str, default: Any = None) -> Any:
        if self._odd and key in self._odd:
            return self._odd[key]
        if not _HEX_KEY.fullmatch(key):
            return default
        row = self.row_of_number(int(key, 16))
        return default if row is None else row

    def row_of_number(self, number: int) -> int | None:
        """The newest row of the key whose 16 hex digits spell `number`; None: no such key.

        Bisection in an array makes a Python int of each number it compares (20 for a
        million keys): first the keys whose top 16 bits are the number's are found (the
        first time, where each such run starts), then only they are bisected."""
        starts = self._starts
        if starts is None:
            ordered = self._sorted
            starts = array("I", (bisect.bisect_left(ordered, top << 48) for top in range(1 << 16)))
            starts.append(len(ordered))
            self._starts = starts
        top = number >> 48
        ordered = self._sorted
        place = bisect.bisect_left(ordered, number, starts[top], starts[top + 1])
        if place < len(ordered) and ordered[place] == number:
            return self._rows[place]
        return None

    def __getitem__(self, key: str) -> int:
        row: int | None = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __len__(self) -> int:
        return len(self._order)

    def __iter__(self) -> Iterator[str]:
        return (self.key_of(row) for row in self._order)

    def values(self) -> Iterator[int]:  # type: ignore[override]
        return iter(self._order)

    def items(self) -> Iterator[tuple[str, int]]:  # type: ignore[override]
        return ((self.key_of(row), row) for row in self._order)


def _in_order(numbers: array[int], odd: Mapping[int, str]) -> Iterator[list[int]]:
    """The rows of keys batchrun made (not `odd`), by key number and, of one key, by row: a
    bucket of rows at a time (`SORT_BUCKET_BITS`), in order."""
    shift = 64 - SORT_BUCKET_BITS
    buckets = [array("I") for _ in range(1 << SORT_BUCKET_BITS)]
    for row, number in enumerate(numbers):
        if number >> shift or row not in odd:  # an odd key's number is 0
            buckets[number >> shift].append(row)
    for at, bucket in enumerate(buckets):
        buckets[at] = array("I")  # each bucket's memory given back once sorted
        yield sorted(bucket, key=numbers.__getitem__)  # stable: a key's rows stay in row order
