"""Asking the API which version each unpinned model of a spec runs today: what `lock` writes."""

from __future__ import annotations

from typing import Protocol

from batchrun.api.objects import Model
from batchrun.errors import ApiError, NotFoundError
from batchrun.planner.lock import Pin, unpinned_models
from batchrun.spec.load import Spec

VERSION_LENGTH = 64  # a Replicate version id: 64 hex characters; anything else cannot be pinned


class ModelSource(Protocol):
    async def get_model(self, owner: str, name: str) -> Model: ...


async def resolve_pins(spec: Spec, client: ModelSource) -> list[Pin]:
    """Ask the API for the latest version of each unpinned model of the spec."""
    pins: list[Pin] = []
    for model in unpinned_models(spec):
        owner, _, name = model.partition("/")
        try:
            found = await client.get_model(owner, name)
        except NotFoundError:
            pins.append(Pin(model, None, "the API has no such model, or no models endpoint"))
            continue
        except ApiError as error:
            if error.status is not None and 400 <= error.status < 500:
                pins.append(Pin(model, None, f"the API refused to describe it ({error.status})"))
                continue
            raise
        pins.append(_pin_for(model, found))
    return pins


def _pin_for(model: str, found: Model) -> Pin:
    if found.is_official:
        # Official models are run by name only; their versions are not Replicate's to pin.
        return Pin(model, None, "an official model: it always runs its latest version")
    version = found.latest_version
    if version and len(version) == VERSION_LENGTH and version.isalnum():
        return Pin(model, version)
    if version:
        return Pin(model, None, f"its version {version!r} cannot be pinned")
    return Pin(model, None, "the API names no latest version for it")
