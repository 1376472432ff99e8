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
from dataclasses import dataclass

from batchrun.api.client import DEFAULT_BASE_URL, normalize_base_url
from batchrun.errors import UsageError
from batchrun.spec.load import DEFAULT_TOKEN_ENV

# A name meant for a Replicate(-compatible) API: REPLICATE_API_TOKEN, STAGING_REPLICATE_TOKEN.
# Secrets for anything else (GITHUB_TOKEN, AWS_SECRET_ACCESS_KEY) need the command line.
_REPLICATE_TOKEN_NAME = re.compile(r"[A-Z0-9_]*REPLICATE[A-Z0-9_]*TOKEN")


@dataclass(frozen=True)
class Endpoint:
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
