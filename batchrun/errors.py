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
URL only, and every text an exception is made with passes through `Redactor.text` (below), the
one redaction every sink applies.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple


class BatchrunError(Exception):
    """Base class of every error batchrun raises on purpose.

    An exception is a sink: its text may quote a server, a manifest or a file, and a caller
    may log it. Every text it is made with is redacted then (`secrets_in_use`).
    """

    def __init__(self, *args: object) -> None:
        redactor = secrets_in_use()
        super().__init__(*(redactor.text(a) if isinstance(a, str) else a for a in args))


class SpecIssue(NamedTuple):
    """One problem in a spec, at a place a person can jump to: `file:line:col: path: message`.

    Issues sort by place (file, line, column), then path and message, and compare and hash by
    value. A NamedTuple, as the spec layer's records are (see `batchrun.spec`).
    """

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
        self.url = secrets_in_use().text(url)
        super().__init__(message)


class ExpiredURLError(DownloadError):
    """The output URL no longer serves the file (Replicate's links live for one hour)."""


class ApiError(BatchrunError):
    """The API answered with an error, or could not be reached.

    `method` and `url` name the request (never its headers); `status` is the HTTP status or
    None when no answer came; `detail` is the server's own explanation; both redacted.
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
        redactor = secrets_in_use()
        self.method = method
        self.url = redactor.text(url)
        self.status = status
        self.detail = redactor.text(detail)
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
        self.invalid_fields = tuple(secrets_in_use().text(name) for name in invalid_fields)
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

# Secrets handed to this process other than through a `*_TOKEN` variable (`--token-env
# AWS_SECRET_ACCESS_KEY`, the Python API's `token=`): the client remembers each one it is given.
_remembered: set[str] = set()


def remember_secret(secret: str) -> None:
    """Redact `secret` at every sink from now on, as the `*_TOKEN` variables are."""
    if len(secret) >= MIN_SECRET_LENGTH and secret not in _remembered:
        _remembered.add(secret)
        refresh_secrets()


def redacted_secrets(secrets: Iterable[str]) -> list[str]:
    """The secrets that are redacted (long enough to be one), longest first."""
    return sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Return `text` with every secret (of at least MIN_SECRET_LENGTH characters) as `***`."""
    return Redactor.of(secrets).text(text)


class Redactor(NamedTuple):
    """The one redaction: the secrets of this process as `***`, applied at every sink.

    batchrun keeps what it receives as it was received (an id or a URL that holds the token
    still works); what it writes or shows goes through a Redactor first, at each sink: the
    terminal, the manifest, the CSV, the report, an export and its card, `results()`, and the
    exceptions it raises (docs/SECURITY.md). `text` and `value` work on decoded text, so a
    token that arrived JSON-escaped is found; `document` is for text already encoded (a page,
    JSON, CSV) and finds each secret as those encodings write it.
    """

    secrets: tuple[str, ...]  # longest first, so a secret inside another goes with it
    forms: tuple[str, ...]  # each secret as HTML, JSON and CSV write it, longest first

    @classmethod
    def of(cls, secrets: Iterable[str]) -> Redactor:
        """A Redactor for `secrets` (those shorter than MIN_SECRET_LENGTH are left out)."""
        found = redacted_secrets(secrets)
        forms = {form for secret in found for form in _written_forms(secret)}
        return cls(tuple(found), tuple(sorted(forms, key=len, reverse=True)))

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        """`text` (decoded) with every secret as `***`."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def value(self, value: Any) -> Any:
        """A JSON-like value with every text in it redacted, keys included (a copy, when a
        secret is in it; else the value itself)."""
        return self._copy(value) if self.secrets and self.finds_in(value) else value

    def finds_in(self, value: Any) -> bool:
        """Whether any text of a JSON-like value holds a secret."""
        if isinstance(value, str):
            return any(secret in value for secret in self.secrets)
        if isinstance(value, list | tuple):
            return any(self.finds_in(item) for item in value)
        if isinstance(value, dict):
            return any(self.finds_in(str(k)) or self.finds_in(v) for k, v in value.items())
        return False

    def document(self, text: str) -> str:
        """Encoded text (HTML, JSON, CSV) with every secret as `***`, in each form those
        encodings give it (the same text, for a token of letters, digits and `_`)."""
        for form in self.forms:
            if form in text:
                text = text.replace(form, "***")
        return text

    def _copy(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list | tuple):
            return [self._copy(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self._copy(v) for k, v in value.items()}
        return value


def _written_forms(secret: str) -> list[str]:
    # Imported here: its table of entities is a few ms of every start-up, and without a secret
    # in the environment no form is needed.
    import html

    quoted = [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]
    return [*quoted, *(html.escape(form) for form in quoted), secret.replace('"', '""')]


def _environment_secrets(env: Mapping[str, str]) -> list[str]:
    return [value for name, value in env.items() if name.endswith("_TOKEN")]


# The Redactor of the last `refresh_secrets`: reading the environment costs tens of
# microseconds, too much for each line a sink writes, and it changes only between commands.
_current: Redactor | None = None


def secrets_in_use() -> Redactor:
    """The Redactor for this process's secrets, as of the last `refresh_secrets` (every
    command, Python API call, client and manifest writer refreshes it as it starts)."""
    return _current if _current is not None else refresh_secrets()


def refresh_secrets() -> Redactor:
    """Read the secrets again: the value of every `*_TOKEN` variable of the environment, and
    each secret a client was given (`remember_secret`)."""
    global _current
    found = [*_environment_secrets(os.environ), *_remembered]
    _current = Redactor.of(found)
    return _current
