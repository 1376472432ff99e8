"""Asking the API which version each unpinned model of a spec runs today: what `lock` writes."""

from __future__ import annotations

from typing import Protocol

from batchrun.api.objects import Model
from batchrun.errors import ApiError, AuthenticationError, NotFoundError, SpecError
from batchrun.planner.lock import Pin, unpinned_models
from batchrun.spec.load import Spec

VERSION_LENGTH = 64  # a Replicate version id: 64 hex characters; anything else cannot be pinned


class ModelSource(Protocol):
    base_url: str

    async def get_model(self, owner: str, name: str) -> Model: ...

    async def has_endpoint(self, collection: str) -> bool: ...


async def resolve_pins(spec: Spec, client: ModelSource) -> list[Pin]:
    """Ask the API for the latest version of each unpinned model of the spec.

    SpecError, placed at each job naming one, if the API has no such model: `lock` can gate
    CI. An API without a models endpoint (a proxy) leaves its models unpinned, with a note.
    """
    pins: list[Pin | str] = []  # a model's name: its 404, decided once every model was asked
    answered = False
    for model in unpinned_models(spec):
        owner, _, name = model.partition("/")
        try:
            found = await client.get_model(owner, name)
        except NotFoundError:
            pins.append(model)
            continue
        except AuthenticationError as error:
            if error.status == 401:
                raise  # the token, not the model: every other question would be refused too
            pins.append(Pin(model, None, f"the API refused to describe it ({error.status})"))
            continue
        except ApiError as error:
            if error.status is not None and 400 <= error.status < 500:
                pins.append(Pin(model, None, f"the API refused to describe it ({error.status})"))
                continue
            raise
        answered = True
        pins.append(_pin_for(model, found))
    # A 404 for one model means "no such model" only from an API that has the endpoint: one
    # that answered for another model, or that lists models.
    unsure = [pin for pin in pins if isinstance(pin, str)]
    endpoint = answered or (bool(unsure) and await client.has_endpoint("models"))
    missing = unsure if endpoint else []
    said = "the API answered 404 (no such model here, or no models endpoint)"
    resolved = [pin if isinstance(pin, Pin) else Pin(pin, None, said) for pin in pins]
    if missing:
        raise SpecError(
            spec.issue(
                (*job.path, "model"),
                f"the API at {client.base_url} has no model {job.target.model}; check its"
                " spelling, and the base URL: a proxy serves the API under a path, like"
                " https://host/replicate",
            )
            for job in spec.jobs
            if job.target.kind == "model" and job.target.model in missing
        )
    return resolved


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
