"""The keys a walk of the plan has met, as the 64-bit numbers their 16 hex digits spell.

The plan's duplicate check (two rows that would make one prediction) must remember every key of
the walk, and a run's producers walk the plan while every prediction runs: a Python set of ints
held about 80 bytes a key (a 36-byte int object plus its slot), which a run kept for each key it
had finished until its last prediction was started. Here a key is 8 bytes in one array, an open
addressing table (linear probing) of at most MAX_LOAD full: 11 to 21 bytes a key, and one block of
memory the allocator gives back whole when the walk ends.

Keys are prefixes of sha256 digests, evenly spread already: a key's own low bits place it.
"""

from __future__ import annotations

from array import array

# The share of slots a table may fill before it doubles: linear probing stays at a few probes a
# lookup up to here (about 8.5 for a new key at 0.75, 2.5 on average over a table's fill).
MAX_LOAD = 0.75
FIRST_SLOTS = 1 << 10  # a small plan's table: 8 KB


class KeySet:
    """A set of 64-bit unsigned numbers; `add` says whether the number was new."""

    __slots__ = ("_count", "_limit", "_mask", "_table", "_zero")

    def __init__(self) -> None:
        self._table = array("Q", [0]) * FIRST_SLOTS
        self._mask = FIRST_SLOTS - 1
        self._limit = int(FIRST_SLOTS * MAX_LOAD)
        self._count = 0
        self._zero = False  # 0 marks an empty slot: the key 0000000000000000 is kept aside

    def __len__(self) -> int:
        return self._count + self._zero

    def __contains__(self, number: int) -> bool:
        if number == 0:
            return self._zero
        table, mask = self._table, self._mask
        slot = number & mask
        while True:
            there = table[slot]
            if there == number:
                return True
            if there == 0:
                return False
            slot = (slot + 1) & mask

    def add(self, number: int) -> bool:
        """Keep `number` (0 <= number < 2**64); False if it was kept already."""
        if number == 0:
            new, self._zero = not self._zero, True
            return new
        table, mask = self._table, self._mask
        slot = number & mask
        while True:
            there = table[slot]
            if there == number:
                return False
            if there == 0:
                break
            slot = (slot + 1) & mask
        table[slot] = number
        self._count += 1
        if self._count > self._limit:
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._table
        size = 2 * len(old)
        table = array("Q", [0]) * size
        mask = size - 1
        for number in old:
            if number:
                slot = number & mask
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = number
        self._table, self._mask, self._limit = table, mask, int(size * MAX_LOAD)
