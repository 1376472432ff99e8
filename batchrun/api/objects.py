"""Parsed API objects: what the client hands to the layers above instead of raw JSON.

Parsing is tolerant of what real servers and proxies send (missing optional fields, `version`
values like `hidden` or `dp-…`, statuses this code has never heard of) and strict only about what
batchrun cannot work without: a prediction's `id` and `status`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from batchrun.errors import ServerError

# What a prediction id may not hold: Replicate's are 26 lowercase letters and digits, and a
# proxy may choose others, but an id goes into URLs and names as one segment: never a `/` or
# `\`, a control character, `.` or `..` alone, or more than MAX_ID_LENGTH characters.
_NOT_IN_ID = re.compile(r"[/\\\x00-\x1f\x7f]")
MAX_ID_LENGTH = 128

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "canceled", "aborted"})


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _error_text(value: Any) -> str | None:
    # Some servers send a structured error; keep it readable rather than dropping it.
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else str(value)


def _require_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ServerError(f"expected a JSON object describing a {what}, got {type(data).__name__}")
    return data


@dataclass(frozen=True, slots=True)
class Prediction:
    """One prediction as the API last described it; `raw` keeps the whole JSON object."""

    id: str
    status: str
    model: str
    version: str
    input: dict[str, Any]
    output: Any
    error: str | None
    logs: str
    metrics: dict[str, Any]
    created_at: str | None
    started_at: str | None
    completed_at: str | None
    urls: dict[str, str]
    raw: dict[str, Any]

    @property
    def terminal(self) -> bool:
        """True once the prediction can no longer change (`aborted` included)."""
        return self.status in TERMINAL_STATUSES

    @classmethod
    def from_json(cls, data: Any) -> Prediction:
        """Parse a prediction object; raise ServerError when it has no usable `id` or `status`."""
        obj = _require_object(data, "prediction")
        ident = obj.get("id")
        status = obj.get("status")
        if not isinstance(ident, str) or not ident:
            raise ServerError("the prediction in the response has no id")
        if ident in (".", "..") or len(ident) > MAX_ID_LENGTH or _NOT_IN_ID.search(ident):
            # The id goes into URLs (`/predictions/{id}`) and file names: `../models/x` or
            # `a/b` would point them elsewhere.
            raise ServerError(f"the prediction id {ident[:80]!r} in the response is not an id")
        if not isinstance(status, str) or not status:
            raise ServerError(f"prediction {ident} in the response has no status")
        urls = obj.get("urls")
        return cls(
            id=ident,
            status=status,
            model=_text(obj.get("model")),
            version=_text(obj.get("version")),
            input=_mapping(obj.get("input")),
            output=obj.get("output"),
            error=_error_text(obj.get("error")),
            logs=_text(obj.get("logs")),
            metrics=_mapping(obj.get("metrics")),
            created_at=_optional_text(obj.get("created_at")),
            started_at=_optional_text(obj.get("started_at")),
            completed_at=_optional_text(obj.get("completed_at")),
            urls=(
                {k: v for k, v in urls.items() if isinstance(v, str)}
                if isinstance(urls, dict)
                else {}
            ),
            raw=obj,
        )


@dataclass(frozen=True, slots=True)
class Model:
    """A model and the id of its latest version (None for models that hide their versions)."""

    owner: str
    name: str
    latest_version: str | None
    is_official: bool
    visibility: str | None
    # The latest version's Cog schema (its `components.schemas.Input` is the model's inputs);
    # empty when the API publishes none.
    openapi_schema: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> Model:
        """Parse a model object; raise ServerError when it names no owner and name."""
        obj = _require_object(data, "model")
        owner, name = obj.get("owner"), obj.get("name")
        if not isinstance(owner, str) or not owner or not isinstance(name, str) or not name:
            raise ServerError("the model in the response has no owner or name")
        latest = obj.get("latest_version")
        return cls(
            owner=owner,
            name=name,
            latest_version=_optional_text(latest.get("id")) if isinstance(latest, dict) else None,
            is_official=obj.get("is_official") is True,
            visibility=_optional_text(obj.get("visibility")),
            openapi_schema=_schema_of(latest),
        )


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One version of a model, with its Cog schema (empty when the API publishes none)."""

    id: str
    openapi_schema: dict[str, Any]

    @classmethod
    def from_json(cls, data: Any) -> ModelVersion:
        """Parse a version object; raise ServerError when it has no id."""
        obj = _require_object(data, "version")
        ident = obj.get("id")
        if not isinstance(ident, str) or not ident:
            raise ServerError("the version in the response has no id")
        return cls(id=ident, openapi_schema=_schema_of(obj))


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployment and the model and version its current release runs (None if unsaid)."""

    owner: str
    name: str
    model: str | None
    version: str | None

    @classmethod
    def from_json(cls, data: Any) -> Deployment:
        """Parse a deployment object; raise ServerError when it names no owner and name."""
        obj = _require_object(data, "deployment")
        owner, name = obj.get("owner"), obj.get("name")
        if not isinstance(owner, str) or not owner or not isinstance(name, str) or not name:
            raise ServerError("the deployment in the response has no owner or name")
        release = obj.get("current_release")
        release = release if isinstance(release, dict) else {}
        return cls(
            owner=owner,
            name=name,
            model=_optional_text(release.get("model")),
            version=_optional_text(release.get("version")),
        )


def _schema_of(version: Any) -> dict[str, Any]:
    schema = version.get("openapi_schema") if isinstance(version, dict) else None
    return schema if isinstance(schema, dict) else {}


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file stored with the Files API; `url` is what a prediction input refers to."""

    id: str
    url: str
    size: int
    sha256: str | None
    content_type: str
    expires_at: str | None

    @classmethod
    def from_json(cls, data: Any) -> UploadedFile:
        """Parse a file object; raise ServerError when it has no id or no `urls.get`."""
        obj = _require_object(data, "file")
        ident = obj.get("id")
        url = _mapping(obj.get("urls")).get("get")
        if not isinstance(ident, str) or not ident:
            raise ServerError("the file in the response has no id")
        if not isinstance(url, str) or not url:
            raise ServerError(f"file {ident} in the response has no urls.get")
        size = obj.get("size")
        return cls(
            id=ident,
            url=url,
            size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
            sha256=_optional_text(_mapping(obj.get("checksums")).get("sha256")),
            content_type=_text(obj.get("content_type")) or "application/octet-stream",
            expires_at=_optional_text(obj.get("expires_at")),
        )


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A file fetched into place: where it is, its sha256 and size, and what the host called it."""

    path: str
    sha256: str
    bytes: int
    content_type: str | None


def parse_time(text: str | None) -> datetime | None:
    """An API timestamp (ISO 8601, `Z` or an offset, up to nanoseconds) as a datetime, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip())  # 3.11+: `Z`, and digits past 6 are dropped
    except ValueError:
        return None
