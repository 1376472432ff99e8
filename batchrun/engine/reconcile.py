"""Finding a prediction whose create may have happened although its answer never came.

A create can be lost after it was sent (a timeout, a reset, a 5xx, or this process killed while
waiting). Creating again could pay twice, so the API's list of recent predictions is searched
first for one with the same target and the same input as sent (compared by a hash of its
canonical JSON) that no other key of this run folder already owns.

Listing is shared: every key that needs reconciling in one moment waits on one walk of the list.
Where the API has no list endpoint (some proxies), `find` raises NoListEndpoint and the caller
creates again, flagging the key as a possible duplicate.
"""

from __future__ import annotations

import array
import hashlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any, Protocol

import anyio

from batchrun.api.objects import Prediction, parse_time
from batchrun.errors import NotFoundError
from batchrun.planner.expand import canonical_json
from batchrun.spec.target import Target

# Clocks differ and creates queue: look a little earlier than the earliest send time.
LOOKBACK = timedelta(minutes=2)


class NoListEndpoint(Exception):
    """The API cannot list predictions, so a lost create cannot be found."""


class Lister(Protocol):
    def list_predictions(
        self, *, created_after: str | None = None
    ) -> AsyncIterator[Prediction]: ...


def request_sha256(input: Mapping[str, Any]) -> str:
    """The hash of an input as sent, by which a listed prediction is recognised."""
    return hashlib.sha256(canonical_json(input).encode()).hexdigest()


def matches_target(prediction: Prediction, target: Target) -> bool:
    """Whether a listed prediction could have come from a create for `target`."""
    if target.kind == "model":
        return prediction.model == target.model
    if target.kind == "version":
        return prediction.version == target.version
    return True  # a deployment's predictions name the model behind it, which we do not know


class Reconciler:
    """Looks lost creates up in the API's list, once per batch of lookups."""

    def __init__(self, client: Lister, owned_ids: Callable[[], Iterable[str]]) -> None:
        self._client = client
        self._owned_ids = owned_ids
        # Ids keys of this run folder own: those of the manifest as loaded, added on the first
        # lookup (reading them costs a pass), and those this run created, kept as the 8 bytes
        # of their hash (a run of a million keeps 8 MB, not a set of a million strings; two ids
        # sharing a hash by chance would at worst make a lost create be made again).
        self._claimed: set[str] = set()
        self._created = array.array("q")
        self._loaded_owned = False
        self._lock = anyio.Lock()
        self._listed: list[Prediction] = []
        self._listed_after: str | None = None
        self._listed_at = float("-inf")  # when the list in hand began to be fetched
        self._has_list = True

    def claim(self, prediction_id: str) -> None:
        """Record that a key of this run owns `prediction_id`, so no other key takes it."""
        self._created.append(hash(prediction_id))

    def _owned(self, prediction_id: str) -> bool:
        return prediction_id in self._claimed or hash(prediction_id) in self._created

    async def find(self, target: Target, sha256: str, sent_at: str | None) -> Prediction | None:
        """The unclaimed listed prediction created for this request, or None."""
        asked_at = anyio.current_time()
        async with self._lock:
            if not self._has_list:
                raise NoListEndpoint
            if not self._loaded_owned:
                self._claimed.update(self._owned_ids())
                self._loaded_owned = True
            # A list fetched before this lookup began may predate the prediction sought.
            if self._listed_at < asked_at or not self._covers(sent_at):
                await self._refresh(sent_at)
            for prediction in self._listed:
                if (
                    matches_target(prediction, target)
                    and request_sha256(prediction.input) == sha256
                    and not self._owned(prediction.id)
                ):
                    self.claim(prediction.id)
                    return prediction
            return None

    def _covers(self, sent_at: str | None) -> bool:
        listed, wanted = parse_time(self._listed_after), parse_time(sent_at)
        return listed is not None and wanted is not None and listed <= wanted - LOOKBACK

    async def _refresh(self, sent_at: str | None) -> None:
        started = anyio.current_time()
        after = parse_time(sent_at)
        since = after - LOOKBACK if after is not None else None
        created_after = since.isoformat() if since is not None else None
        listed: list[Prediction] = []
        try:
            async for prediction in self._client.list_predictions(created_after=created_after):
                created = parse_time(prediction.created_at)
                if since is not None and created is not None and created.tzinfo and created < since:
                    break  # newest first: an API that ignores the filter need not be walked
                listed.append(prediction)
        except NotFoundError:
            self._has_list = False
            raise NoListEndpoint from None
        self._listed = listed
        self._listed_after = created_after
        self._listed_at = started
