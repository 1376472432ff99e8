"""Models and versions: every `owner/name` exists; its versions are stable 64-hex ids.

A model's version id is a hash of its name and a generation counter. `bump` starts a new
generation ("the latest version changed"); older versions keep working when named explicitly.
With `strict_versions` off, a 64-hex id the sandbox never derived is adopted as one more
version of the named model (or, without a name, of a placeholder model), so specs written
against real Replicate version ids run unchanged.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from batchrun.sandbox.inputs import BOUNDS
from batchrun.sandbox.outputs import DEFAULT_SIDE

VERSION_ID = re.compile(r"^[0-9a-f]{64}$")
# The sandbox's reserved inputs that take text (batchrun.sandbox): declared in a strict schema
# too, so a test can steer a prediction of a model that refuses every other undeclared input.
RESERVED_STRINGS = ("sandbox_status", "sandbox_error", "sandbox_output")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LANGUAGE_HINTS = ("llama", "gpt", "mistral", "qwen", "gemma", "chat", "llm", "text")
COG_VERSION = "0.13.7"


def is_model_name(owner: str, name: str) -> bool:
    """Whether `owner/name` is spelled like a Replicate model reference."""
    return bool(_NAME.match(owner) and _NAME.match(name))


# Models the seed specs and docs name, which publish a schema shaped like Replicate's own: the
# pre-flight catches in the sandbox what it would catch on Replicate (an input they do not take,
# num_inference_steps above 4, an aspect ratio they do not know).
PUBLISHED = (
    "black-forest-labs/flux-schnell",
    "lucataco/flux-schnell-lora",
    "sandbox/flux-schnell-four",
)
# Models whose schema asks for more than one image unless an input says otherwise (flux-schnell's
# schema with `num_outputs` defaulting to 4): a plan's estimate and a run's budget count the
# images a model makes by default, and the sandbox bills them (`metrics.image_count`).
DEFAULT_OUTPUTS = {"sandbox/flux-schnell-four": 4}


def default_outputs(model: str) -> int:
    """The images a prediction of `model` makes when its input sets no `num_outputs`."""
    return DEFAULT_OUTPUTS.get(model, 1)


def is_strict(model: str) -> bool:
    """Models named `*strict*`, and those in `PUBLISHED`, publish a schema like a real Cog
    model's: no inputs beyond those it declares, enums and bounds (as flux-schnell's)."""
    return model in PUBLISHED or "strict" in model.partition("/")[2].lower()


def model_kind(model: str) -> str:
    """`language` for names that look like text models (or owner `meta`), else `image`."""
    owner, _, name = model.partition("/")
    lowered = name.lower()
    if owner == "meta" or any(hint in lowered for hint in LANGUAGE_HINTS):
        return "language"
    return "image"


def derived_version_id(model: str, generation: int) -> str:
    """The stable version id of generation `generation` of `model`."""
    return hashlib.sha256(f"batchrun-sandbox:{model}:{generation}".encode()).hexdigest()


@dataclass(frozen=True)
class Version:
    """One version of a model."""

    id: str
    model: str
    created_at: float
    derived: bool

    def to_json(self, iso: str) -> dict[str, Any]:
        """The version as Replicate shows it (`iso` is `created_at` already formatted)."""
        return {
            "id": self.id,
            "created_at": iso,
            "cog_version": COG_VERSION,
            "openapi_schema": openapi_schema(
                model_kind(self.model),
                strict=is_strict(self.model),
                lora=self.model == "lucataco/flux-schnell-lora",
                outputs=default_outputs(self.model),
            ),
        }


@dataclass
class Model:
    """A model the sandbox has been asked about, with its versions newest last."""

    owner: str
    name: str
    versions: list[Version] = field(default_factory=list)
    run_count: int = 0

    @property
    def full_name(self) -> str:
        """`owner/name`."""
        return f"{self.owner}/{self.name}"

    @property
    def latest(self) -> Version:
        """The newest derived version (adopted ones never become the latest)."""
        return next(v for v in reversed(self.versions) if v.derived)


class ModelRegistry:
    """Models and versions by name and id. Not thread-safe: the state's lock guards it."""

    def __init__(self) -> None:
        self._models: dict[str, Model] = {}
        self._versions: dict[str, Version] = {}

    def model(self, owner: str, name: str, now: float) -> Model:
        """The model `owner/name`, created with its first version on first use."""
        key = f"{owner}/{name}"
        found = self._models.get(key)
        if found is None:
            found = Model(owner, name)
            self._models[key] = found
            self._add(found, derived_version_id(key, 0), now, derived=True)
        return found

    def bump(self, owner: str, name: str, now: float) -> Version:
        """Give `owner/name` a new latest version."""
        model = self.model(owner, name, now)
        generation = sum(1 for v in model.versions if v.derived)
        return self._add(model, derived_version_id(model.full_name, generation), now, derived=True)

    def all(self) -> list[Model]:
        """Every model asked about so far."""
        return list(self._models.values())

    def version(self, version_id: str) -> Version | None:
        """The version with this id, if the sandbox knows it."""
        return self._versions.get(version_id)

    def adopt(self, owner: str, name: str, version_id: str, now: float) -> Version:
        """Make a foreign version id a version of `owner/name` (lenient mode)."""
        model = self.model(owner, name, now)
        known = self._versions.get(version_id)
        if known is not None and known.model == model.full_name:
            return known
        return self._add(model, version_id, now, derived=False)

    def _add(self, model: Model, version_id: str, now: float, *, derived: bool) -> Version:
        version = Version(version_id, model.full_name, now, derived)
        model.versions.append(version)
        self._versions.setdefault(version_id, version)
        return version


def openapi_schema(
    kind: str, *, strict: bool = False, lora: bool = False, outputs: int = 1
) -> dict[str, Any]:
    """A Cog-style schema of the inputs the sandbox understands and the output it returns
    (`outputs`: the images it makes by default, `num_outputs`' default).

    The sandbox takes any other input (and ignores it), so its usual schema says so with
    `additionalProperties: true`; a strict model's schema, like Cog's, does not.
    """
    if strict:
        return _strict_schema(lora=lora, outputs=outputs)
    inputs: dict[str, Any] = {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
        "seed": {"type": "integer", "title": "Seed", "x-order": 1},
    }
    if kind == "image":
        defaults = {"num_outputs": outputs, "width": DEFAULT_SIDE, "height": DEFAULT_SIDE}
        inputs |= {
            name: {"type": "integer", "minimum": low, "maximum": high, "default": defaults[name]}
            for name, (low, high) in BOUNDS.items()
        }
        output: dict[str, Any] = {"type": "array", "items": {"type": "string", "format": "uri"}}
    else:
        output = {
            "type": "array",
            "items": {"type": "string"},
            "x-cog-array-type": "iterator",
            "x-cog-array-display": "concatenate",
        }
    return _document(
        {"type": "object", "title": "Input", "properties": inputs, "additionalProperties": True},
        {"title": "Output", **output},
        {},
    )


ASPECT_RATIOS = ["1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21"]
OUTPUT_FORMATS = ["webp", "jpg", "png"]
MEGAPIXELS = ["1", "0.25"]


def _strict_schema(*, lora: bool = False, outputs: int = 1) -> dict[str, Any]:
    """flux-schnell's inputs as Replicate publishes them (flux-schnell-lora's add its LoRA's),
    and the sandbox's own reserved inputs (`sandbox_*`), which only the sandbox takes."""
    low, high = BOUNDS["num_outputs"]
    inputs = {
        "prompt": {"type": "string", "title": "Prompt", "x-order": 0},
        "aspect_ratio": {
            "allOf": [{"$ref": "#/components/schemas/aspect_ratio"}],
            "default": "1:1",
            "x-order": 1,
        },
        "num_outputs": {
            "type": "integer",
            "title": "Num Outputs",
            "minimum": low,
            "maximum": high,
            "default": outputs,
            "x-order": 2,
        },
        "num_inference_steps": {
            "type": "integer",
            "title": "Num Inference Steps",
            "minimum": 1,
            "maximum": 4,
            "default": 4,
            "x-order": 3,
        },
        "seed": {"type": "integer", "title": "Seed", "x-order": 4},
        "output_format": {
            "allOf": [{"$ref": "#/components/schemas/output_format"}],
            "default": "webp",
            "x-order": 5,
        },
        "output_quality": {
            "type": "integer",
            "title": "Output Quality",
            "minimum": 0,
            "maximum": 100,
            "default": 80,
            "x-order": 6,
        },
        "disable_safety_checker": {
            "type": "boolean",
            "title": "Disable Safety Checker",
            "default": False,
            "x-order": 7,
        },
        "go_fast": {"type": "boolean", "title": "Go Fast", "default": True, "x-order": 8},
        "megapixels": {
            "allOf": [{"$ref": "#/components/schemas/megapixels"}],
            "default": "1",
            "x-order": 9,
        },
    }
    if lora:
        inputs["hf_lora"] = {"type": "string", "title": "Hf Lora", "x-order": 10}
        inputs["lora_scale"] = {
            "type": "number",
            "title": "Lora Scale",
            "default": 0.8,
            "minimum": -1,
            "maximum": 2,
            "x-order": 11,
        }
    inputs |= {name: {"type": "string", "title": name} for name in RESERVED_STRINGS}
    inputs["sandbox_latency"] = {"type": "number", "title": "sandbox_latency", "minimum": 0}
    enums = {
        "aspect_ratio": {"title": "aspect_ratio", "type": "string", "enum": ASPECT_RATIOS},
        "output_format": {"title": "output_format", "type": "string", "enum": OUTPUT_FORMATS},
        "megapixels": {"title": "megapixels", "type": "string", "enum": MEGAPIXELS},
    }
    return _document(
        {"type": "object", "title": "Input", "required": ["prompt"], "properties": inputs},
        {"title": "Output", "type": "array", "items": {"type": "string", "format": "uri"}},
        enums,
    )


def _document(
    inputs: dict[str, Any], output: dict[str, Any], more: dict[str, Any]
) -> dict[str, Any]:
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": {"Input": inputs, "Output": output, **more}},
    }
