"""The spec layer: YAML text to a checked, frozen `Spec`, every error placed at file:line:col.

Its records (`Spec`, `Job`, `Target`, ...) are `typing.NamedTuple`s: frozen, compared and
hashed by value, as frozen dataclasses would be, but created in about a third of the time
(0.2 ms against 0.55 on Python 3.11: a frozen dataclass compiles six methods or more from text,
a NamedTuple one), and without `import dataclasses`, which brings `inspect` (8 to 11 ms more).
An offline `validate` has 0.12 s for everything (issue 22), so the records it builds outside
this layer are NamedTuples too (`SpecIssue`, `Price`, `PlannedPrediction`, `Endpoint`,
`ValidateArgs`); tests/commands/test_startup.py checks that it imports no `dataclasses`. A
record that may sit inside an input's values (`planner.keys.FileInput`) or that extends a base
class (the value sources) is a plain class with `__slots__` instead: a tuple there would be
walked as a list, or written as a JSON array.

Being tuples, they are more than a dataclass: equal to a plain tuple (or another record) of the
same values, ordered, iterable, and written by `json.dumps` as an array, not refused. So a
record is compared only with its own kind, and reaches JSON or a walk of values only through
its `to_json()` (`Target`, `Price`, `SchemaCount`) or `str()` (`Rate`, `SpecIssue`). No field
is named `count` or `index`, which would hide a tuple's method: hence `Job.position` and
`Rate.number`.
"""
