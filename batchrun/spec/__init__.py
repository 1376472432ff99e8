"""The spec layer: YAML text to a checked, frozen `Spec`, every error placed at file:line:col.

Its records (`Spec`, `Job`, `Target`, ...) are `typing.NamedTuple`s: frozen, compared and
hashed by value, as frozen dataclasses would be, but created in a twentieth of the time. A
frozen dataclass compiles its methods from text when its class is created, about half a
millisecond each on Python 3.11, and `import dataclasses` (with `inspect`) costs 5 to 9 more:
an offline `validate` has 0.12 s for everything (issue 22; tests/commands/test_startup.py
checks that it imports no `dataclasses`). A record that may sit inside an input's values
(`planner.keys.FileInput`) or that extends a base class (the value sources) is a plain class
with `__slots__` instead, since a tuple there would be walked as a list.
"""
