"""What a client sent: requests per kind, retries and failures, counted as they happen.

A module of its own, without httpx: a run that finds nothing to send still reports its
counts (all zero) without loading the HTTP stack.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ClientStats:
    """Requests sent per kind (every attempt counts), retries, and failures seen on the way."""

    creates: int = 0
    gets: int = 0
    lists: int = 0
    cancels: int = 0
    models: int = 0
    uploads: int = 0
    downloads: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    network_errors: int = 0
