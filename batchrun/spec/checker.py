"""Collecting a spec's issues: placed, kept away from values the schema already refused.

A value the schema refused (or that holds a token) is "blocked": the meaning checks still run
everywhere else, so one load reports every independent problem, but nothing more is said about
a blocked value or anything inside it, which would only repeat the first complaint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from batchrun.errors import SpecIssue
from batchrun.humanize import shown_path
from batchrun.safefs import is_inside
from batchrun.spec.allow import Allowances, outside_message
from batchrun.spec.paths import resolve_path
from batchrun.spec.sources import ValueFileError
from batchrun.spec.yamlpos import KeyPath, YamlDocument, format_path


class Checker:
    """The issues found so far in one spec, and the paths no longer worth checking."""

    def __init__(
        self,
        doc: YamlDocument,
        folder: Path,
        shown_folder: str,
        allow: Allowances | None = None,
    ) -> None:
        self.doc = doc
        self.folder = folder
        self.shown_folder = shown_folder
        self.allow = allow or Allowances()
        self.issues: list[SpecIssue] = []
        self.blocked: set[KeyPath] = set()
        self.outside: list[Path] = []  # paths outside the folder that the command line allowed

    def block(self, paths: Iterable[KeyPath]) -> None:
        """Say nothing more about these values."""
        self.blocked.update(paths)

    def is_blocked(self, path: KeyPath) -> bool:
        """Whether the value at `path`, or a value holding it, is blocked."""
        return any(path[:end] in self.blocked for end in range(len(path) + 1))

    def add(self, path: KeyPath, message: str, *, at_key: bool = False) -> None:
        """An issue about the value at `path` (or its key), unless that value is blocked."""
        if not self.is_blocked(path):
            self.issues.append(self.doc.issue(path, message, at_key=at_key))

    def add_at_key(self, path: KeyPath, key: KeyPath, message: str) -> None:
        """An issue about the value at `path`, placed at the key `key` (inside it)."""
        if not self.is_blocked(path):
            line, col = self.doc.key_where(key)
            self.issues.append(SpecIssue(self.doc.file, line, col, format_path(path), message))

    def add_found(self, path: KeyPath, needle: str, message: str) -> None:
        """An issue placed where `needle` is written inside the value at `path`."""
        if not self.is_blocked(path):
            line, col = self.doc.find(path, needle)
            self.issues.append(SpecIssue(self.doc.file, line, col, format_path(path), message))

    def add_file_error(self, path: KeyPath, error: ValueFileError) -> None:
        """A problem inside a value file, placed in that file, named by the axis it feeds."""
        if not self.is_blocked(path):
            file = self.shown_file(error.path)
            self.issues.append(
                SpecIssue(file, error.line, error.col, format_path(path), error.message)
            )

    def resolve(self, written: str) -> Path:
        """A path the spec wrote, relative to the spec's folder."""
        return resolve_path(self.folder, written)

    def reach(self, where: KeyPath, written: str, verb: str = "reads") -> Path | None:
        """`resolve(written)` if it is inside the spec's folder or allowed; else an issue at
        `where` and None (docs/SECURITY.md: a spec alone reads and writes only its folder)."""
        path = self.resolve(written)
        if is_inside(path, self.folder):
            return path
        if self.allow.permits(path):
            self.outside.append(path)
            return path
        self.add(where, outside_message(written, path, verb))
        return None

    def shown_file(self, path: Path) -> str:
        """How messages name a file next to (or under) the spec."""
        try:
            inside = path.relative_to(self.folder)
        except ValueError:
            return shown_path(path)
        return shown_path(os.path.join(self.shown_folder, inside))
