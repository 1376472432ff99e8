"""The values a table's rows share, each kept once: `Interned` ids, a variable's `Values`
(past WIDE_VALUES of them, digests: `widevalues.Wide`)."""

from __future__ import annotations

import operator
from array import array
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar, cast, overload

from batchrun.manifest.widevalues import (
    Wide,
    holds_mapping,
    place_held,
    value_key,
)
from batchrun.planner.columns import NOT_MAPPINGS, flat_vars

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

    @property
    def last(self) -> tuple[H, int]:
        """The value placed last, and its place."""
        return self._last

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


_INT64 = (-(2**63), 2**63 - 1)
WIDEST = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}  # the largest place each array holds
# A variable with more distinct values than this keeps none of them (`Wide`): a page of the
# report shows at most 2,000 records (`report.grid.Limits.items`) and a filter menu 60 values,
# so no page shows them side by side, and a text of its own per key (a prompt per row of a
# dataset) would otherwise keep a million texts in every reader. Integers (a seed per key)
# stay an array of int64 however many, as cheap as their digests and in number order.
WIDE_VALUES = 4096


# Types whose values `flat_vars` does not spread.
_PLAIN = NOT_MAPPINGS


class Values:
    """One variable in every row: each distinct value kept once (`raws`, in the order rows
    first show them; place 0 is UNSET, a row that does not set it), and per row its place.

    What is per row is its place (`places`): a byte while the variable has at most 255 values,
    then two bytes, then four. A variable that takes a value of its own in each of a million
    keys (a seed, an index) keeps a million values: while they are all integers, in an array
    of 8 bytes each (`raws` is then an array, its place 0 a stand-in), not as a list of 36-byte
    int objects. Past WIDE_VALUES values of other kinds, `raws` is a `Wide`: the values'
    digests, not the values (`keep_all`: every value kept, for records in memory). Past
    WIDE_VALUES values, the rows appended are held and placed once all are in (`settle`): read
    `places` only after it.
    """

    def __init__(self, rows: int = 0, *, keep_all: bool = False) -> None:
        self.raws: list[Any] | array[int] | Wide = array("q", [0])
        self.places: array[int] = array("B", bytes(rows))  # the rows before it appeared
        # Once a value is a mapping (not empty): the fields each row's own value spreads over
        # (`flat_vars`, in its order: an export's columns), interned, and per row their place
        # (0: the row's value is no mapping). None while no value is one.
        self.shapes: Interned[tuple[str, ...]] | None = None
        self.shape_places = array("B")
        self._at: dict[Hashable, int] | None = {}  # None: made again when a row comes
        self._keep_all = keep_all
        self._held_from = -1  # the first row held, not yet placed (-1: none)
        self._ints = array("q")  # held, of more than WIDE_VALUES integers

    @property
    def wide(self) -> bool:
        return type(self.raws) is Wide

    def kept(self) -> list[Any] | array[int]:
        """The values by place, of a variable that keeps them (not `wide`)."""
        if isinstance(self.raws, Wide):
            raise TypeError("a wide variable keeps no values")
        return self.raws

    def append(self, raw: Any) -> None:
        """The next row's value (UNSET: the row does not set the variable); the places of a
        `Wide` variable's rows are known once `settle`d."""
        if self.shapes is not None:
            self._shape(raw)
        elif type(raw) not in _PLAIN and holds_mapping(raw):  # the first: the rows before, none
            self.shapes = Interned(())
            self.shape_places = array("B", bytes(len(self.places)))
            self._shape(raw)
        self._append_value(raw)

    def _append_value(self, raw: Any) -> None:
        """`append` of the row's value, its fields aside."""
        if raw is UNSET:
            self.places.append(0)
            return
        raws, at = self.raws, self._at
        if isinstance(raws, Wide):
            raws.hold(raw)
            self._stand_in()
            return
        kind = type(raw)
        ints = self._ints
        if ints and kind is int and _INT64[0] <= raw <= _INT64[1]:  # of many integers, held
            ints.append(raw)
            self.places.append(1)  # `_stand_in`, of a row after the first held
            return
        if (kind is str or kind is int) and at is not None:  # a value known (their own key)
            place = at.get(raw)
            # Of an array of more than WIDE_VALUES integers, an integer is held (below).
            if place is not None and (
                len(raws) <= WIDE_VALUES or type(raws) is list or self._keep_all
            ):
                self.places.append(place)
                return
        int64 = type(raw) is int and _INT64[0] <= raw <= _INT64[1]
        if isinstance(raws, array) and len(raws) > WIDE_VALUES and not self._keep_all:
            if int64:  # one of many integers: placed among them at `settle`, as a Wide's
                self._hold(self._ints, raw)
                return
            self.settle()  # the integers held placed: then their digests
            self._hold(self._become_wide(), raw)
            return
        key = value_key(raw)
        if at is None:  # settled, or read from the table kept on disk: rows appended after
            at = self._at = {value_key(raw): place for place, raw in enumerate(raws) if place}
        place = at.get(key)
        if place is None:
            place = len(raws)
            if not (isinstance(raws, array) and int64):
                if place > WIDE_VALUES and not self._keep_all:  # too many to keep: digests
                    self._hold(self._become_wide(), raw)
                    return
                if isinstance(raws, array):
                    raws = self.raws = [UNSET, *raws[1:]]  # the first value not an int64
            raws.append(raw)
            at[key] = place
            self._widen(place)
        self.places.append(place)

    def _become_wide(self) -> Wide:
        """Past WIDE_VALUES (every row placed, none held): the values kept become their
        digests, and each row's place follows its value's."""
        wide, found = Wide.of(self.kept())
        self.raws, self._at = wide, None
        if any(place != at for at, place in enumerate(found, 1)):  # a digest shared
            moved = array("I", [0, *found])
            self.places = array(self.places.typecode, map(moved.__getitem__, self.places))
        return wide

    def _hold(self, held: Wide | array[int], raw: Any) -> None:
        """The row's value, held (by a `Wide`, or in the integers held) to be placed when all
        rows are in (`settle`)."""
        if isinstance(held, Wide):
            held.hold(raw)
        else:
            held.append(raw)
        self._stand_in()

    def _stand_in(self) -> None:
        """A row held, its place a stand-in until `settle` places it."""
        if self._held_from < 0:
            self._held_from, self._at = len(self.places), None
        self.places.append(1)

    def extend(self, other: Values) -> None:
        """The rows of `other` after these (both settled), as if appended one by one: its
        values placed among these in the order its rows first show them, which is the order of
        its places (the second half of a table, parsed by another process: `twoparse.py`)."""
        rows = len(self.places)
        theirs = other.raws
        if isinstance(theirs, Wide):  # past WIDE_VALUES there: past it here too
            if isinstance(self.raws, Wide):
                wide = self.raws
            else:
                self.settle()
                wide = self._become_wide()
            wide.mapping = wide.mapping or theirs.mapping
            for place in range(1, len(theirs)):
                wide.hold_digest(
                    theirs.digests[place], theirs.numbers[place], theirs.numeric[place]
                )
                self._stand_in()
        else:
            for raw in theirs[1:]:  # each value once, a row each, in the order of its places
                self._append_value(raw)
        self.settle()
        remap = array("q", [0, *self.places[rows:]])  # other's place → this one's
        del self.places[rows:]
        if all(map(operator.eq, remap, range(len(remap)))):
            self.places.extend(array(self.places.typecode, other.places))
        else:
            self.places.extend(array(self.places.typecode, map(remap.__getitem__, other.places)))
        self._extend_shapes(rows, other)

    def _extend_shapes(self, rows: int, other: Values) -> None:
        """The fields of `other`'s rows after these `rows` (`extend`)."""
        if other.shapes is None:
            if self.shapes is not None:
                self.shape_places.extend(array(self.shape_places.typecode, [0]) * len(other.places))
            return
        if self.shapes is None:
            self.shapes, self.shape_places = Interned(()), array("B", bytes(rows))
        shapes = self.shapes
        remap = array("q", map(shapes.place, other.shapes.values))
        widest = len(shapes.values) - 1
        if widest > WIDEST[self.shape_places.typecode]:
            self.shape_places = array("I" if widest > WIDEST["H"] else "H", self.shape_places)
        typecode = self.shape_places.typecode
        self.shape_places.extend(array(typecode, map(remap.__getitem__, other.shape_places)))

    def _shape(self, raw: Any) -> None:
        """The row's place among `shapes`."""
        shapes = self.shapes
        assert shapes is not None
        kind = type(raw)
        if kind is dict:
            if not raw:  # {}: no mapping `flat_vars` spreads
                self.shape_places.append(0)
                return
            if _PLAIN.issuperset(map(type, raw.values())):  # flat already (most rows)
                names = tuple(raw)
                last, place = shapes.last
                if names == last:  # the shape of the row before: its place fits already
                    self.shape_places.append(place)
                    return
            else:
                names = tuple(flat_vars(raw))
        elif kind in _PLAIN or raw is UNSET or not holds_mapping(raw):
            self.shape_places.append(0)
            return
        else:
            names = tuple(flat_vars(raw))
        place = shapes.place(names)
        if place > WIDEST[self.shape_places.typecode]:
            self.shape_places = array("I" if place > WIDEST["H"] else "H", self.shape_places)
        self.shape_places.append(place)

    def fields_of(self, row: int) -> tuple[str, ...]:
        """The fields the row's value spreads over (`flat_vars`), () when it is no mapping."""
        if self.shapes is None:
            return ()
        return self.shapes.values[self.shape_places[row]]

    def _widen(self, place: int) -> None:
        """Room in `places` for `place`."""
        if place > WIDEST[self.places.typecode]:
            self.places = array("I" if place > WIDEST["H"] else "H", self.places)

    def settle(self) -> None:
        """Every row is in: a `Wide` variable's rows appended are placed, and the lookup from
        value to place is no longer needed."""
        self._at = None
        raws, start = self.raws, self._held_from
        if start < 0:
            return
        if isinstance(raws, Wide):
            found = raws.settle()
        else:
            found, _ = place_held(cast("array[int]", raws), self._ints)  # integers held
            self._ints = array("q")
        self._widen(len(raws) - 1)
        places, held = self.places, iter(found)
        for row in range(start, len(places)):
            if places[row]:
                places[row] = next(held)
        self._held_from = -1


class ReadBack(Sequence[Any]):
    """A `Wide` variable's values by place, each read when asked (`read`: from the line of the
    first row holding it, `KeyTable.value_at`) and kept once read: a page asks for the few it
    shows."""

    def __init__(self, wide: Wide, read: Callable[[int], Any]) -> None:
        self.wide = wide
        self._read = read
        self._known: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self.wide)

    @overload
    def __getitem__(self, place: int) -> Any: ...

    @overload
    def __getitem__(self, place: slice) -> Sequence[Any]: ...

    def __getitem__(self, place: int | slice) -> Any:
        if isinstance(place, slice):
            return [self[at] for at in range(*place.indices(len(self)))]
        found = self._known.get(place, UNSET)
        if found is UNSET:
            found = self._known[place] = self._read(place)
        return found


def vars_of_line(line: dict[str, Any]) -> dict[str, Any]:
    """A line's variables as `Record.from_json` reads them (TypeError, ValueError: malformed)."""
    found = line.get("vars") or {}
    return found if type(found) is dict else dict(found)
