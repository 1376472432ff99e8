"""How spec values appear in messages: short, in YAML's flow style, never showing a token.

Every message that echoes something the user wrote goes through `show` or `show_row`, so a
literal API token pasted into a spec is named as a problem but never printed back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# Replicate tokens are r8_ + 37 characters; hk- is the older form; anything sent as a bearer.
TOKEN_PATTERN = re.compile(
    r"r8_[A-Za-z0-9]{20,}|hk-[A-Za-z0-9]{20,}|Bearer\s+[A-Za-z0-9._~+/=-]{20,}"
)
# Never printed back: wider than TOKEN_PATTERN, so a token with a stray character typed into
# it, or cut short by a comment, is not echoed in part either.
_TOKEN_LIKE = re.compile(r"(r8_|hk-)[A-Za-z0-9]{4,}|Bearer\s+\S{8,}")
TOKEN_MESSAGE = (
    "looks like an API token; put it in the environment "
    "(REPLICATE_API_TOKEN or the variable named by token_env) instead"
)
_LIMIT = 80
_BARE = re.compile(r"[A-Za-z0-9_./]([A-Za-z0-9_./ +-]*[A-Za-z0-9_./+-])?")
_RESERVED_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "~"}


def looks_like_token(text: str) -> bool:
    """Whether `text` contains something that looks like an API token."""
    return TOKEN_PATTERN.search(text) is not None


def show(value: Any) -> str:
    """A value as a message quotes it: 'text', 12, true, null, a mapping, a list."""
    if isinstance(value, str):
        if _TOKEN_LIKE.search(value):
            return "(a value that looks like an API token)"
        return repr(_clip(value))
    if isinstance(value, dict | list):
        return _clip(_flow(value))
    return _scalar(value)


def show_row(row: Mapping[str, Any]) -> str:
    """A row of variables in YAML flow style, like {fruit: banana, seed: 3}, cut short."""
    return _clip(_flow(row), limit=120)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{_flow(str(key))}: {_flow(item)}" for key, item in value.items())
            + "}"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    if isinstance(value, str):
        if _TOKEN_LIKE.search(value):
            return "***"
        plain = _BARE.fullmatch(value) and value.lower() not in _RESERVED_WORDS
        return _clip(value) if plain and not _is_number(value) else json.dumps(_clip(value))
    return _scalar(value)


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "null"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _clip(text: str, limit: int = _LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice to a misspelt word, if one is close enough."""
    import difflib  # here: only a mistake needs it, and it is a millisecond of every start-up

    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def join_names(names: Iterable[str]) -> str:
    """`a, b, c` for a message listing names (a name with a line break or tab is quoted)."""
    return ", ".join(name if name.isprintable() else json.dumps(name) for name in names)
