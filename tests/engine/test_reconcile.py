"""Finding lost creates in the API's list: claims, batching, and what the list is trusted for."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from batchrun.api.objects import Prediction
from batchrun.engine.reconcile import NoListEndpoint, Reconciler, request_sha256
from batchrun.errors import NotFoundError
from batchrun.spec.target import Target

pytestmark = pytest.mark.anyio

PAINTER = Target("model", "acme", "painter")
INPUT = {"prompt": "the same for both repeats"}
SENT_AT = "2026-01-01T00:00:10.000Z"


def prediction(ident: str, created_at: str = "2026-01-01T00:00:09.000Z") -> Prediction:
    return Prediction.from_json(
        {
            "id": ident,
            "status": "succeeded",
            "model": "acme/painter",
            "version": "v",
            "input": INPUT,
            "output": None,
            "created_at": created_at,
        }
    )


class Lister:
    """A fake API list: newest first, counting the walks."""

    def __init__(self, *predictions: Prediction, pause: anyio.Event | None = None) -> None:
        self.predictions = list(predictions)
        self.walks = 0
        self.pause = pause

    async def list_predictions(
        self, *, created_after: str | None = None
    ) -> AsyncIterator[Prediction]:
        self.walks += 1
        if self.pause is not None:
            await self.pause.wait()
        for item in list(self.predictions):
            yield item


async def test_a_prediction_created_earlier_in_the_run_is_never_handed_to_another_key() -> None:
    # Two repeats send the same input. The first was created (and claimed) before any lookup;
    # the second's answer was lost before it reached the server: it must not adopt the first's.
    lister = Lister(prediction("first"))
    reconciler = Reconciler(lister, list)
    reconciler.claim("first")
    assert await reconciler.find(PAINTER, request_sha256(INPUT), SENT_AT) is None


async def test_ids_the_manifest_already_owns_are_not_handed_out() -> None:
    lister = Lister(prediction("old"), prediction("lost"))
    reconciler = Reconciler(lister, lambda: ["old"])
    found = await reconciler.find(PAINTER, request_sha256(INPUT), SENT_AT)
    assert found is not None
    assert found.id == "lost"
    assert await reconciler.find(PAINTER, request_sha256(INPUT), SENT_AT) is None  # claimed


async def test_a_lookup_never_trusts_a_list_fetched_before_it_began() -> None:
    # A's walk is under way when B's create is lost and its prediction appears: B must walk
    # again rather than reuse A's list, which predates its prediction.
    pause = anyio.Event()
    lister = Lister(pause=pause)
    reconciler = Reconciler(lister, list)
    found: dict[str, Prediction | None] = {}

    async def look(name: str, input: dict[str, object]) -> None:
        found[name] = await reconciler.find(PAINTER, request_sha256(input), SENT_AT)

    async with anyio.create_task_group() as tg:
        tg.start_soon(look, "a", {"prompt": "something else"})
        await anyio.wait_all_tasks_blocked()  # A is inside its walk
        lister.predictions.append(prediction("b's"))
        tg.start_soon(look, "b", INPUT)
        await anyio.wait_all_tasks_blocked()
        pause.set()
    assert found["a"] is None
    assert found["b"] is not None
    assert found["b"].id == "b's"
    assert lister.walks == 2


async def test_lookups_that_wait_together_share_one_walk() -> None:
    pause = anyio.Event()
    lister = Lister(prediction("x"), pause=pause)
    reconciler = Reconciler(lister, list)

    async def look() -> None:
        await reconciler.find(PAINTER, request_sha256({"other": 1}), SENT_AT)

    async with anyio.create_task_group() as tg:
        for _ in range(5):
            tg.start_soon(look)
        await anyio.wait_all_tasks_blocked()
        pause.set()
    assert lister.walks == 1


async def test_the_walk_stops_at_predictions_older_than_asked() -> None:
    old = prediction("old", created_at="2025-01-01T00:00:00.000Z")
    lister = Lister(prediction("new"), old, *[prediction(f"x{i}") for i in range(3)])
    reconciler = Reconciler(lister, list)
    found = await reconciler.find(PAINTER, request_sha256(INPUT), SENT_AT)
    assert found is not None
    assert found.id == "new"
    assert [p.id for p in reconciler._listed] == ["new"]  # an API that ignored created_after


async def test_without_a_list_endpoint_the_lookup_says_so() -> None:
    class NoList:
        async def list_predictions(
            self, *, created_after: str | None = None
        ) -> AsyncIterator[Prediction]:
            raise NotFoundError("GET /v1/predictions: 404")
            yield  # pragma: no cover

    reconciler = Reconciler(NoList(), list)
    with pytest.raises(NoListEndpoint):
        await reconciler.find(PAINTER, request_sha256(INPUT), SENT_AT)
