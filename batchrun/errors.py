"""batchrun's exceptions: the library raises these, and only `batchrun.cli` prints them.

    BatchrunError
    ├── SpecError              a spec (or a file it names) is wrong; carries every SpecIssue
    ├── UsageError             a command line or an option that cannot work
    ├── ManifestError          a run folder's manifest cannot be read or belongs to another spec
    ├── StorageError           the disk refused a write (full, read-only, permissions)
    ├── InputFileError         a local file of an input cannot be sent (engine/uploads.py)
    ├── DownloadError          an output file could not be fetched or stored
    │   ├── ExpiredURLError        its URL has expired (403/404/410 from the file host)
    │   └── NamingError            the files template cannot name it (planner/naming.py)
    └── ApiError               the API answered with an error, or could not be reached
        ├── AuthenticationError    401/403: a missing, wrong or revoked token (fatal)
        ├── NotFoundError          404: no such model, version, deployment or prediction
        ├── InvalidRequestError    400/422: the API refused the request; names the fields
        ├── RateLimitedError       429: carries `retry_after` in seconds
        ├── ServerError            5xx, or a body that is not what the API promised
        ├── ApiConnectionError     no answer at all: DNS, refused, reset, timeout
        └── OutcomeUnknownError    a create whose answer was lost after it was sent: it may
                                   have created a prediction, so it must not be blindly retried

Messages never contain the API token: every message that names a request shows the method and
URL only, and `redact` scrubs any text that came from elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


class BatchrunError(Exception):
    """Base class of every error batchrun raises on purpose."""


@dataclass(frozen=True, order=True)
class SpecIssue:
    """One problem in a spec, at a place a person can jump to: `file:line:col: path: message`."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(BatchrunError):
    """A spec has one or more problems; `issues` holds all of them, sorted by position."""

    def __init__(self, issues: Iterable[SpecIssue]) -> None:
        self.issues: tuple[SpecIssue, ...] = tuple(sorted(set(issues)))
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def one_line(self) -> str:
        """The first issue on one line, and how many more there are."""
        first = " ".join(str(self.issues[0]).split()) if self.issues else "the spec has errors"
        more = len(self.issues) - 1
        return first + (f" (and {more} more)" if more > 0 else "")


class UsageError(BatchrunError):
    """A command line or an option that cannot work."""


class ManifestError(BatchrunError):
    """A manifest that cannot be read, or that belongs to another spec."""


class StorageError(BatchrunError):
    """The disk refused a write: full, read-only, or not ours to write."""


class DownloadError(BatchrunError):
    """An output file could not be fetched or stored."""

    def __init__(self, message: str, *, url: str = "") -> None:
        self.url = url
        super().__init__(message)


class ExpiredURLError(DownloadError):
    """The output URL no longer serves the file (Replicate's links live for one hour)."""


class ApiError(BatchrunError):
    """The API answered with an error, or could not be reached.

    `method` and `url` name the request (never its headers); `status` is the HTTP status or
    None when no answer came; `detail` is the server's own explanation, already redacted.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str = "",
        status: int | None = None,
        detail: str = "",
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.detail = detail
        super().__init__(message)


class AuthenticationError(ApiError):
    """401/403 from the API: the token is missing, wrong or not allowed to do this."""


class NotFoundError(ApiError):
    """404 from the API: no such model, version, deployment or prediction."""


class InvalidRequestError(ApiError):
    """400/422 from the API: the request was refused; `invalid_fields` names what was wrong."""

    def __init__(
        self,
        message: str,
        *,
        invalid_fields: Sequence[str] = (),
        method: str = "",
        url: str = "",
        status: int | None = None,
        detail: str = "",
    ) -> None:
        self.invalid_fields = tuple(invalid_fields)
        super().__init__(message, method=method, url=url, status=status, detail=detail)


class RateLimitedError(ApiError):
    """429 from the API; `retry_after` is how long the server asked us to wait, in seconds."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        method: str = "",
        url: str = "",
        status: int | None = 429,
        detail: str = "",
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, method=method, url=url, status=status, detail=detail)


class ServerError(ApiError):
    """5xx from the API, or a body that is not the JSON the API promised."""


class ApiConnectionError(ApiError):
    """No answer at all: the host was not found, refused, reset the connection or timed out."""


class OutcomeUnknownError(ApiError):
    """A create was sent but its answer was lost (timeout, reset, 5xx): it may have happened.

    Never retried blindly; the runner reconciles with the list endpoint before creating again.
    """


# Characters a secret needs to be redacted: a real API token has 40. A shorter one (a test's
# `REPLICATE_API_TOKEN=x`) turns up by chance inside ids and URLs, and "redacting" it there broke
# 548 of 1,000 downloads; it protects nothing that a 2-character guess would not find.
MIN_SECRET_LENGTH = 8


def redacted_secrets(secrets: Iterable[str]) -> list[str]:
    """The secrets that are redacted (long enough to be one), longest first."""
    return sorted((s for s in secrets if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return `text` with every secret (of at least MIN_SECRET_LENGTH characters) as `***`."""
    for secret in redacted_secrets(secrets):
        text = text.replace(secret, "***")
    return text


def redact_environment(text: str, env: Mapping[str, str]) -> str:
    """`text` with the value of every `*_TOKEN` variable of `env` replaced by `***`: the last
    line of defence of what a command prints (the library never puts a token in a message)."""
    # `redact` keeps only secrets of MIN_SECRET_LENGTH or more, longest first.
    return redact(text, [value for name, value in env.items() if name.endswith("_TOKEN")])


def redact_json(value: Any, secrets: Iterable[str]) -> Any:
    """A parsed JSON value with `redact` applied to every text in it, keys included: the
    decoded text, so a secret the server escaped (`\\u0068...`) is found too."""
    found = redacted_secrets(secrets)
    return _redact_value(value, found) if found else value


def _redact_value(value: Any, found: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, found)
    if isinstance(value, list):
        return [_redact_value(item, found) for item in value]
    if isinstance(value, dict):
        return {redact(str(k), found): _redact_value(v, found) for k, v in value.items()}
    return value
