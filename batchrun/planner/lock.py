"""`SPEC.lock`: each `model: owner/name` of a spec pinned to the version it had when locked.

A spec that says `model: acme/painter` runs whatever version is latest on the day it runs; the
lock file, committed beside the spec, makes the next run (and anyone's run) use the same one.
`plan` and `run` read it: a pinned model is created by version (POST /v1/predictions). Keys do
not change when a spec is locked or re-locked: they come from the spec as written, and the
manifest records the version the API reported for every prediction either way.

Some models cannot be pinned: official models run their latest version, which the API does not
name, and a proxy may have no models endpoint. They are listed as unpinned, with the reason.

The file is YAML with sorted keys and no timestamps, so locking again with nothing changed
leaves it byte for byte the same and a changed version is a one-line diff.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from batchrun import safefs
from batchrun.errors import SpecError, SpecIssue
from batchrun.spec.load import Spec
from batchrun.spec.target import Target

FORMAT = 1
# Bytes of a lock file: one line per model of a spec; a megabyte is tens of thousands of models.
MAX_LOCK_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Pin:
    """One model's entry: its version, or why it has none."""

    model: str
    version: str | None
    reason: str | None = None


@dataclass(frozen=True)
class Lock:
    """The pins of one spec, by `owner/name`."""

    path: Path
    pins: dict[str, Pin]

    def resolve(self, target: Target) -> Target:
        """The target to create with: a pinned model becomes its version; anything else as is."""
        if target.kind != "model":
            return target
        pin = self.pins.get(target.model)
        if pin is None or pin.version is None:
            return target
        return Target("version", target.owner, target.name, pin.version)


def lock_path(spec_path: Path) -> Path:
    """Where a spec's lock file lives: beside it, named `<spec file>.lock`."""
    return spec_path.with_name(spec_path.name + ".lock")


def unpinned_models(spec: Spec) -> list[str]:
    """Every `model: owner/name` of the spec without a version, each once, in order."""
    seen: dict[str, None] = {}
    for job in spec.jobs:
        if job.target.kind == "model":
            seen.setdefault(job.target.model, None)
    return list(seen)


def write_lock(spec: Spec, pins: list[Pin]) -> Path:
    """Write `SPEC.lock` atomically; return its path."""
    path = lock_path(spec.path)
    models: dict[str, Any] = {}
    for pin in sorted(pins, key=lambda p: p.model):
        models[pin.model] = (
            {"version": pin.version} if pin.version else {"version": None, "unpinned": pin.reason}
        )
    body = yaml.safe_dump(
        {"batchrun_lock": FORMAT, "models": models}, sort_keys=True, allow_unicode=True
    )
    text = (
        f"# Written by `batchrun lock {spec.path.name}`: the version each model of the spec\n"
        "# runs. Commit it beside the spec; lock again to move to newer versions.\n" + body
    )
    # The lock belongs beside its spec: a link there must not carry it anywhere else.
    safefs.write_atomically(path, text, path.parent)
    return path


def read_lock(spec_path: Path) -> Lock | None:
    """The spec's lock, or None when it has no lock file."""
    path = lock_path(spec_path)
    if not os.path.lexists(path):
        return None
    if not safefs.is_inside(path, path.parent):
        # A lock linked to ~/.netrc must not be read: its lines would come back in the errors.
        raise _broken(
            path, "it is a link to a file outside the spec's folder; batchrun does not read it"
        )
    try:
        text = safefs.read_regular(path, MAX_LOCK_BYTES, follow=True).decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise _broken(path, f"cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise _broken(path, "not valid UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # The problem and where, never PyYAML's quote of the line (the file may be a secret).
        problem = getattr(error, "problem", None) or "cannot parse it"
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise _broken(path, f"not valid YAML: {problem}{at}") from None
    if not isinstance(data, dict) or data.get("batchrun_lock") != FORMAT:
        raise _broken(path, f"not a batchrun lock file (no `batchrun_lock: {FORMAT}`)")
    pins: dict[str, Pin] = {}
    for model, entry in (data.get("models") or {}).items():
        version = entry.get("version") if isinstance(entry, dict) else None
        if version is not None and (not isinstance(version, str) or len(version) != 64):
            raise _broken(path, f"models.{model}.version is not a 64-character version")
        reason = entry.get("unpinned") if isinstance(entry, dict) else None
        pins[str(model)] = Pin(str(model), version, reason)
    return Lock(path, pins)


def _broken(path: Path, message: str) -> SpecError:
    # A broken lock file stops plan and run before anything is sent, like a broken spec.
    return SpecError([SpecIssue(str(path), 1, 1, "", f"{message}; run `batchrun lock` again")])
