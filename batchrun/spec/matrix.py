"""The rows of a job: the product of its axes, with GitHub Actions' include and exclude rules.

1. The product of the axes in declared order, the first axis slowest.
2. `exclude` removes every combination whose values equal all of an entry's values.
3. Each `include` entry is merged into every remaining combination whose *original* (axis)
   values it does not change; values added by an earlier entry may be overwritten. An entry
   that merges into no combination becomes a row of its own, after the product.

The product streams: the first axis is read once, value by value (it may be a million-row CSV),
and exclude and include entries are decided axis by axis, so a subtree that no entry can touch
is produced without any per-row checks. Values are compared strictly: `1`, `1.0`, `true` and
`"1"` are four different values, as they are four different inputs to a model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import product
from typing import Any, NamedTuple

from batchrun.spec.sources import ValueSource

Row = dict[str, Any]
# (axis position, value) pairs, sorted by position, and how many of them matched so far.
_Conditions = tuple[tuple[int, Any], ...]


def same(a: Any, b: Any) -> bool:
    """Equality that tells `1`, `1.0`, `true` and `"1"` apart, also inside lists and mappings."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


class Matrix(NamedTuple):
    """A job's axes with their include and exclude entries."""

    axes: tuple[tuple[str, ValueSource], ...] = ()
    exclude: tuple[Mapping[str, Any], ...] = ()
    include: tuple[Mapping[str, Any], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The axis names, in declared order."""
        return tuple(name for name, _ in self.axes)

    def rows(self) -> Iterator[tuple[Row, int | None]]:
        """Every row in order, with the index of the include entry that made it on its own.

        Product rows come with None. A job without axes has one empty row, unless it has
        include entries: then (as in GitHub Actions) each entry is a row.
        """
        if not self.axes:
            if not self.include:
                yield {}, None
            for index, entry in enumerate(self.include):
                yield dict(entry), index
            return
        position = {name: i for i, name in enumerate(self.names)}
        excludes = [
            (tuple(sorted((position[k], v) for k, v in entry.items())), 0)
            for entry in self.exclude
            if all(k in position for k in entry)
        ]
        includes = [
            (tuple(sorted((position[k], v) for k, v in entry.items() if k in position)), 0, i)
            for i, entry in enumerate(self.include)
        ]
        walk = _Walk(self, [source.materialize() for _, source in self.axes[1:]])
        for row in walk.level(0, {}, excludes, includes):
            yield row, None
        for index, entry in enumerate(self.include):
            if not walk.matched[index]:
                yield dict(entry), index


class _Walk:
    """One pass over a matrix: the inner axes held, the include entries that merged somewhere."""

    def __init__(self, matrix: Matrix, inner: list[Sequence[Any]]) -> None:
        self.matrix = matrix
        self.names = matrix.names
        self.inner = inner
        self.last = len(self.names) - 1
        self.matched = [False] * len(matrix.include)

    def values(self, level: int) -> Iterator[Any] | Sequence[Any]:
        return self.matrix.axes[0][1].values() if level == 0 else self.inner[level - 1]

    def level(
        self,
        level: int,
        base: Row,
        excludes: list[tuple[_Conditions, int]],
        includes: list[tuple[_Conditions, int, int]],
    ) -> Iterator[Row]:
        """Rows below `base` (the values of the axes before `level`)."""
        if not excludes and all(done == len(conds) for conds, done, _ in includes):
            yield from self._plain(level, base, [i for _, _, i in includes])
            return
        name = self.names[level]
        for value in self.values(level):
            left_ex: list[tuple[_Conditions, int]] = []
            excluded = False
            for conds, done in excludes:
                if conds[done][0] != level:
                    left_ex.append((conds, done))
                elif same(value, conds[done][1]):
                    if done + 1 == len(conds):
                        excluded = True
                        break
                    left_ex.append((conds, done + 1))
            if excluded:
                continue
            left_in: list[tuple[_Conditions, int, int]] = []
            for conds, done, index in includes:
                if done == len(conds) or conds[done][0] != level:
                    left_in.append((conds, done, index))
                elif same(value, conds[done][1]):
                    left_in.append((conds, done + 1, index))
            row = base.copy()
            row[name] = value
            if level == self.last:
                yield self._merged(row, [index for _, _, index in left_in])
            else:
                yield from self.level(level + 1, row, left_ex, left_in)

    def _merged(self, row: Row, merging: list[int]) -> Row:
        for index in merging:
            row.update(self.matrix.include[index])
            self.matched[index] = True
        return row

    def _plain(self, level: int, base: Row, merging: list[int]) -> Iterator[Row]:
        """The rest of the product when no entry can remove a row or merge into only some."""
        name, rest_names = self.names[level], self.names[level + 1 :]
        entries = [self.matrix.include[i] for i in merging]
        rest = self.inner[level:]
        produced = False
        for value in self.values(level):
            head = base.copy()
            head[name] = value
            if not rest:
                for entry in entries:
                    head.update(entry)
                produced = True
                yield head
                continue
            for combo in product(*rest):
                row = head.copy()
                row.update(zip(rest_names, combo, strict=False))
                for entry in entries:
                    row.update(entry)
                produced = True
                yield row
        if produced:
            for index in merging:
                self.matched[index] = True
