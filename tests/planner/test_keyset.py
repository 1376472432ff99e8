"""The plan's set of keys: a set's answers, in 8 bytes a key."""

from __future__ import annotations

import hashlib
import random
import sys

from batchrun.planner.keyset import FIRST_SLOTS, MAX_LOAD, KeySet


def _key_numbers(count: int) -> list[int]:
    return [
        int.from_bytes(hashlib.sha256(str(i).encode()).digest()[:8], "big") for i in range(count)
    ]


def test_add_says_whether_a_number_is_new_across_growth() -> None:
    numbers = _key_numbers(20_000)  # the table doubles several times on the way
    keys = KeySet()
    assert all(keys.add(number) for number in numbers)
    assert not any(keys.add(number) for number in numbers)
    assert len(keys) == len(numbers)
    assert all(number in keys for number in numbers)
    assert not any(number in keys for number in _key_numbers(21_000)[20_000:])


def test_numbers_that_share_their_low_bits_probe_past_each_other() -> None:
    # Same slot for all of them, and the last slot of the table: probing wraps to the first.
    last = FIRST_SLOTS - 1
    crowd = [last + (n << 40) for n in range(1, 50)]
    keys = KeySet()
    assert all(keys.add(number) for number in crowd)
    assert keys.add(1)
    assert not keys.add(1)
    assert all(number in keys for number in crowd)
    assert last + (99 << 40) not in keys
    assert len(keys) == len(crowd) + 1


def test_the_largest_and_the_zero_key_are_kept() -> None:
    keys = KeySet()
    assert 0 not in keys
    assert keys.add(0)
    assert not keys.add(0)
    assert keys.add(2**64 - 1)
    assert not keys.add(2**64 - 1)
    assert 0 in keys
    assert 2**64 - 1 in keys
    assert len(keys) == 2


def test_a_key_costs_at_most_8_bytes_over_the_lowest_load() -> None:
    keys = KeySet()
    numbers = _key_numbers(50_000)
    random.Random(1).shuffle(numbers)
    for number in numbers:
        keys.add(number)
    table = keys._table  # the memory is the point of the class
    per_key = table.itemsize * len(table) / len(keys)
    assert per_key <= 8 / (MAX_LOAD / 2) + 1e-9  # just after a doubling
    # A set of the same ints held about 80 bytes a key (the int objects and the slots).
    assert sys.getsizeof(table) < 25 * len(numbers)
