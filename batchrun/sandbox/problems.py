"""Errors the sandbox answers with, as Replicate's problem+json: `{title, detail, status}`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchrun.sandbox.inputs import InvalidField, describe


class Problem(Exception):
    """An error answer; raised anywhere under a handler and turned into a response by the app."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        invalid_fields: Sequence[InvalidField] = (),
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.invalid_fields = tuple(invalid_fields)
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        super().__init__(f"{status} {title}: {detail}")

    def to_json(self) -> dict[str, Any]:
        """The problem+json body."""
        body: dict[str, Any] = {"title": self.title, "detail": self.detail, "status": self.status}
        if self.invalid_fields:
            body["invalid_fields"] = [item.to_json() for item in self.invalid_fields]
        body.update(self.extra)
        return body


def invalid_input(fields: Sequence[InvalidField]) -> Problem:
    """422 listing every invalid field, as Replicate words it."""
    return Problem(422, "Input validation failed", describe(fields), invalid_fields=fields)


def not_found(detail: str = "Not found.") -> Problem:
    """404 for an unknown prediction, file, version or route."""
    return Problem(404, "Not found", detail)


def invalid_version() -> Problem:
    """422 for a version Replicate would not know."""
    return Problem(
        422,
        "Invalid version or not permitted",
        "The specified version does not exist (or perhaps you don't have permission to use it?)",
        invalid_fields=[InvalidField("version", "invalid", "Invalid version or not permitted")],
    )


def bad_request(detail: str) -> Problem:
    """400 for a request the sandbox cannot read."""
    return Problem(400, "Bad request", detail)
