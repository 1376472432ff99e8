"""Where the token goes, and which secret it is: the user's choice, never a spec's alone.

A spec may arrive in a pull request (docs/SECURITY.md). Left to itself it could name any
environment variable in `token_env` (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY) and any host in
`base_url`, and `run` would send that secret there as a Bearer token. So:

- the base URL is `--base-url`, else $REPLICATE_BASE_URL, else the spec's `base_url`, else
  Replicate's; the spec's is used only when the command line allows it (`--allow-spec-base-url`),
  or when it is Replicate's own;
- the token variable is `--token-env`, else the spec's `token_env` when its name says it is
  meant for a Replicate API (REPLICATE in it, ending in TOKEN), else REPLICATE_API_TOKEN.

A refusal is not raised here: `validate` and `plan` show it beside the endpoint, and the commands
that send (`run`, `lock`) raise it as a UsageError before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

from batchrun.errors import UsageError
from batchrun.spec.load import DEFAULT_TOKEN_ENV, Spec

DEFAULT_BASE_URL = "https://api.replicate.com"

# A name meant for a Replicate(-compatible) API: REPLICATE_API_TOKEN, STAGING_REPLICATE_TOKEN.
# Secrets for anything else (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY) need the command line.
_REPLICATE_TOKEN_NAME = re.compile(r"[A-Z0-9_]*REPLICATE[A-Z0-9_]*TOKEN")

# A base URL already in its normal form but for a trailing `/v1` or `/`: http(s), a lower-case
# host, a port that is not the scheme's default, plain path segments (none `.` or `..`). It is
# normalized without httpx, so that commands which send nothing (`validate`, `plan`) need not
# import the HTTP stack; anything else goes through httpx's parser, the rule for the rest.
_PLAIN_URL = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9-]+(?:\.[a-z0-9-]+)*)(?::(?P<port>[1-9][0-9]{0,4}))?"
    r"(?P<path>(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*)/*"
)
_DEFAULT_PORTS = {"http": 80, "https": 443}
_MAX_PORT = 65535  # a larger number is no port: httpx refuses it


def normalize_base_url(url: str) -> str:
    """`https://h/replicate/v1/` → `https://h/replicate`; anything but http(s) is a UsageError."""
    text = url.strip()
    plain = _PLAIN_URL.fullmatch(text)
    if plain is None or not _plain_port(plain["scheme"], plain["port"]):
        return _normalized_by_httpx(text)
    port = f":{plain['port']}" if plain["port"] else ""
    path = plain["path"].removesuffix("/v1")
    return f"{plain['scheme']}://{plain['host']}{port}{path}"


def _plain_port(scheme: str, port: str | None) -> bool:
    return port is None or _DEFAULT_PORTS[scheme] != int(port) <= _MAX_PORT


def _normalized_by_httpx(text: str) -> str:
    import httpx  # here: only a URL out of the ordinary needs its parser

    try:
        parsed = httpx.URL(text)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise UsageError(
            f"the base URL must be an http(s) URL such as {DEFAULT_BASE_URL}, got {text!r}"
        )
    if parsed.query or parsed.fragment:
        raise UsageError(f"the base URL must not have a query or fragment, got {text!r}")
    path = parsed.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return str(parsed.copy_with(path=path or "/")).rstrip("/")


def resolve_token(spec: Spec, env: Mapping[str, str], name: str | None = None) -> str:
    """The API token from the variable `name` (default: the spec's token_env); UsageError if
    unset. Which name may be used is decided above, by `resolve_endpoint`."""
    name = name or spec.token_env
    token = env.get(name, "").strip()
    if not token:
        raise UsageError(
            f"no API token: set {name} in the environment "
            "(or try the built-in emulator with --sandbox)"
        )
    return token


class Endpoint(NamedTuple):
    """The API a command would talk to, the variable its token comes from, and why."""

    base_url: str
    base_from: str
    token_env: str
    token_from: str
    refused: str | None = None  # why a spec's wish was not followed, for run and lock to raise

    def describe(self) -> str:
        """For people: `https://api.replicate.com (default), token from $X (default)`."""
        return (
            f"{self.base_url} ({self.base_from}), token from ${self.token_env} ({self.token_from})"
        )

    def checked(self) -> Endpoint:
        """This endpoint, or a UsageError saying what the command line must allow."""
        if self.refused:
            raise UsageError(self.refused)
        return self


def resolve_endpoint(
    *,
    spec_base_url: str | None,
    spec_token_env: str | None,
    env: Mapping[str, str],
    base_url: str | None = None,
    token_env: str | None = None,
    allow_spec_base_url: bool = False,
) -> Endpoint:
    """Decide the base URL and the token variable from the command line, env and spec."""
    refusals: list[str] = []
    from_env = env.get("REPLICATE_BASE_URL", "").strip()
    if base_url and base_url.strip():
        url, base_from = normalize_base_url(base_url), "--base-url"
    elif from_env:
        url, base_from = normalize_base_url(from_env), "$REPLICATE_BASE_URL"
    elif spec_base_url and spec_base_url.strip():
        url, base_from = normalize_base_url(spec_base_url), "the spec's base_url"
        if url != DEFAULT_BASE_URL and not allow_spec_base_url:
            refusals.append(
                f"the spec asks for the API at {url}; a spec alone does not choose where the "
                f"token goes: pass --base-url {url} (or --allow-spec-base-url) to use it"
            )
    else:
        url, base_from = DEFAULT_BASE_URL, "default"
    if token_env:
        name, token_from = token_env, "--token-env"
    elif spec_token_env and spec_token_env != DEFAULT_TOKEN_ENV:
        name, token_from = spec_token_env, "the spec's token_env"
        if not _REPLICATE_TOKEN_NAME.fullmatch(spec_token_env):
            refusals.append(
                f"the spec names token_env {spec_token_env}, which is not meant for a "
                "Replicate API (its name would have REPLICATE in it and end in TOKEN): pass "
                f"--token-env {spec_token_env} to send that variable's value to {url}"
            )
    else:
        name, token_from = DEFAULT_TOKEN_ENV, "default"
    return Endpoint(url, base_from, name, token_from, "; ".join(refusals) or None)
