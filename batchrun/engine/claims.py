"""Output paths handed out in a run: no two outputs may write one file."""

from __future__ import annotations

from batchrun.planner.naming import NamingError


class PathClaims:
    """Output paths handed out in this run: no two outputs may write one file.

    A template that names the key (`${key}`, the default) gives each key paths no other key's
    can equal (the plan's check of templates, planner/expand.py, relies on it too): such a
    key's claims are checked among its own outputs and dropped once it is done (`release`),
    so a run keeps nothing per finished prediction. Paths of other templates are kept to the end.
    """

    def __init__(self) -> None:
        self._owner: dict[str, tuple[str, int]] = {}  # templates without ${key}: path → owner
        self._own: dict[str, dict[str, int]] = {}  # key → its paths → output (with ${key})

    def claim(self, path: str, key: str, index: int, *, keyed: bool = False) -> None:
        """Take `path` for output `index` of `key` (`keyed`: the template names the key);
        NamingError if another output holds it."""
        if keyed:
            owner_key, owner_index = key, self._own.setdefault(key, {}).setdefault(path, index)
        else:
            owner_key, owner_index = self._owner.setdefault(path, (key, index))
        if owner_key != key:
            raise NamingError(
                f"the files template maps keys {owner_key} and {key} to one file {path!r}; "
                "add ${key} to `files`"
            )
        if owner_index != index:
            raise NamingError(
                f"the files template maps outputs {owner_index} and {index} of {key} to one "
                f"file {path!r}; add ${{index}} to `files`"
            )

    def release(self, key: str) -> None:
        """The key is done: its paths (of a template naming the key) need no guarding."""
        self._own.pop(key, None)
