"""What identifies a prediction: its key, the canonical JSON it hashes, and local files.

A key is the first 16 hex characters of the sha256 of the canonical JSON of
`{"target": ..., "input": ..., "repeat": r}`: sorted keys, no spaces, UTF-8 as is, no NaN.
A local file (`{file: path}` in an input) counts by its content, `{"file": {"sha256", "size"}}`,
not by its path, so moving a file keeps its keys and changing its bytes changes them. Settings
that change how a spec runs (concurrency, rate, output) are not in the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from batchrun import jsontext
from batchrun.safefs import is_inside, open_regular
from batchrun.spec.allow import Allowances, outside_message
from batchrun.spec.describe import show
from batchrun.spec.paths import resolve_path
from batchrun.spec.target import Target
from batchrun.spec.template import KeyPath, RenderError


class FileInput:
    """A local file an input sends (`{file: path}` in the spec).

    A frozen record compared and hashed by its fields. Not a NamedTuple: it sits inside an
    input's values, where every walk (and the JSON encoder) would take a tuple for a list.
    """

    __slots__ = ("path", "relpath", "sha256", "size")
    path: Final[Path]  # absolute
    relpath: Final[str]  # as the spec named it, relative to the spec's folder
    sha256: Final[str]
    size: Final[int]

    def __init__(self, path: Path, relpath: str, sha256: str, size: int) -> None:
        self.path, self.relpath, self.sha256, self.size = path, relpath, sha256, size

    def _fields(self) -> tuple[Path, str, str, int]:
        return self.path, self.relpath, self.sha256, self.size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileInput):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        path, relpath, sha256, size = self._fields()
        return f"FileInput(path={path!r}, relpath={relpath!r}, sha256={sha256!r}, size={size!r})"

    def to_json(self) -> dict[str, Any]:
        """How manifests and `plan --json` show it."""
        return {"file": self.relpath, "sha256": self.sha256, "size": self.size}


def jsonable(value: Any) -> Any:
    """`value` with every FileInput replaced by its JSON form."""
    if isinstance(value, FileInput):
        return value.to_json()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def _as_json(value: Any) -> Any:
    if isinstance(value, FileInput):
        return value.to_json()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _as_key_json(value: Any) -> Any:
    if isinstance(value, FileInput):
        return {"file": {"sha256": value.sha256, "size": value.size}}
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encoder(default: Callable[[Any], Any]) -> Callable[[Any], str]:
    """Sorted keys, no spaces, UTF-8 as is, no NaN; what `default` makes of other values."""
    return jsontext.encoder(separators=(",", ":"), sort_keys=True, allow_nan=False, default=default)


_canonical = _encoder(_as_json)
# Canonical JSON as keys hash it: FileInputs by their content.
key_json = _encoder(_as_key_json)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 as is, no NaN; FileInputs as their `to_json()`."""
    return _canonical(value)


def prediction_key(target: Target, input: Mapping[str, Any], repeat: int) -> str:
    """The key of a prediction: 16 hex characters naming what it computes."""
    text = KEY_HEAD + key_json(dict(input)) + key_tail(repeat, key_json(target.to_json()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The canonical JSON of {"input", "repeat", "target"} has sorted keys, so it is the input's
# JSON between a fixed head and a tail per (repeat, target): a plan encodes each input once.
KEY_HEAD = '{"input":'


def key_tail(repeat: int, target_json: str) -> str:
    """What follows the input's JSON in the text a key hashes."""
    return f',"repeat":{repeat},"target":{target_json}}}'


class FileHasher:
    """Makes the FileInputs of `{file: ...}`: each file hashed once, however many rows name it."""

    def __init__(self, folder: Path, allow: Allowances | None = None) -> None:
        self.folder = folder
        self.allow = allow or Allowances()
        self.known: dict[str, FileInput] = {}
        self.outside: dict[Path, None] = {}  # files read from outside `folder` (allowed)

    def make(self, written: Any, where: KeyPath) -> FileInput:
        """The FileInput for a path as the spec wrote it; RenderError if it is no file."""
        if not isinstance(written, str) or not written:
            raise RenderError(f"expected the path of a file, got {show(written)}", where)
        found = self.known.get(written)
        if found is not None:
            return found
        path = resolve_path(self.folder, written)
        # A row's file is the spec's choice too: outside its folder only when allowed.
        if not is_inside(path, self.folder):
            if not self.allow.permits(path):
                raise RenderError(outside_message(written, path, "reads"), where)
            self.outside[path] = None
        try:
            digest, size = _hash(path)
        except IsADirectoryError:
            raise RenderError(f"'{written}' is a folder, not a file", where) from None
        except FileNotFoundError:
            raise RenderError(f"file '{written}' does not exist", where) from None
        except OSError as error:
            raise RenderError(f"cannot read '{written}': {error.strerror}", where) from None
        made = FileInput(path, Path(written).as_posix(), digest, size)
        self.known[written] = made
        return made


def _hash(path: Path) -> tuple[str, int]:
    # A regular file only: `{file: /dev/zero}` or a FIFO would be hashed forever.
    with open_regular(path, None, follow=True) as handle:
        digest = hashlib.file_digest(handle, "sha256")
        return digest.hexdigest(), handle.tell()  # the bytes hashed, not a stat taken apart
