"""What a job runs: a model (by name or pinned version), a bare version, or a deployment.

    model: owner/name              → kind "model"       POST /v1/models/{owner}/{name}/predictions
    model: owner/name:VERSION      → kind "version"     POST /v1/predictions {"version": ...}
    version: VERSION               → kind "version"     POST /v1/predictions {"version": ...}
    deployment: owner/name         → kind "deployment"  POST /v1/deployments/{owner}/{name}/...

The patterns here are the ones the JSON Schema carries for editors; a test keeps them in step.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

from batchrun.spec.describe import show

TargetKind = Literal["model", "version", "deployment"]

NAME_PART = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
VERSION = r"[0-9a-f]{64}"
PATTERNS: dict[str, str] = {
    "model": rf"^{NAME_PART}/{NAME_PART}(:{VERSION})?$",
    "version": rf"^{VERSION}$",
    "deployment": rf"^{NAME_PART}/{NAME_PART}$",
}
EXPECTED: dict[str, str] = {
    "model": (
        "expected owner/name or owner/name:VERSION (VERSION is 64 lowercase hex characters),"
        " like black-forest-labs/flux-schnell"
    ),
    "version": "expected a version id: 64 lowercase hex characters",
    "deployment": "expected owner/name, like acme/my-flux",
}
_COMPILED = {kind: re.compile(pattern) for kind, pattern in PATTERNS.items()}


class Target(NamedTuple):
    """A parsed `model` / `version` / `deployment` reference."""

    kind: TargetKind
    owner: str = ""
    name: str = ""
    version: str = ""

    @classmethod
    def parse(cls, kind: str, text: str) -> Target:
        """Parse the value of a job's `model`, `version` or `deployment` field."""
        pattern = _COMPILED.get(kind)
        if pattern is None:
            raise ValueError(f"unknown target kind {kind!r}; expected model, version or deployment")
        if not isinstance(text, str) or not pattern.match(text):
            raise ValueError(f"{EXPECTED[kind]}; got {show(text)}")
        if kind == "version":
            return cls("version", version=text)
        reference, _, version = text.partition(":")
        owner, _, name = reference.partition("/")
        if kind == "deployment":
            return cls("deployment", owner, name)
        return cls("version", owner, name, version) if version else cls("model", owner, name)

    @property
    def model(self) -> str:
        """`owner/name`, or "" for a bare version."""
        return f"{self.owner}/{self.name}" if self.owner else ""

    def to_json(self) -> dict[str, str]:
        """The form keys, manifests and `plan --json` use."""
        if self.kind == "deployment":
            return {"deployment": self.model}
        if self.kind == "model":
            return {"model": self.model}
        if self.owner:
            return {"model": self.model, "version": self.version}
        return {"version": self.version}

    def __str__(self) -> str:
        if self.kind == "deployment":
            return f"deployment {self.model}"
        if self.kind == "model":
            return self.model
        return f"{self.model}:{self.version}" if self.owner else self.version
