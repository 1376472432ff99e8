"""Money and time: what a prediction costs at the user's prices, and the most it can cost.

The price rule, in one place for every layer: the spec reads a `Price`, the plan estimates with
it, the run reserves `Price.ceiling` before each create and records `Price.cost` after, and
`status`, `report` and `export` add up what was recorded. Replicate's API reports no cost; it
reports `metrics.predict_time`, `metrics.image_count` and, for language models,
`metrics.input_token_count` and `metrics.output_token_count`. Every figure here is therefore an
estimate from the user's prices, and is always worded so.

    price = Price(per_image=0.003)
    price.cost({"image_count": 2}, files=2, succeeded=True)          # 0.006
    price.ceiling(Bounds(images=2))                                    # 0.006

A price's parts add up. Per prediction and per image are charged for a prediction that
succeeded (Replicate bills an official model by its outputs); per second and per token for what
ran, whatever its end (a canceled prediction still used the time it ran).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple, TypeGuard

PRICE_FIELDS = (
    "per_prediction",
    "per_image",
    "per_second",
    "per_million_input_tokens",
    "per_million_output_tokens",
)
# The words every cost figure carries: Replicate reports no cost, batchrun multiplies.
ESTIMATED = "estimated from your prices"
# Input keys that bound a language model's output tokens, as Replicate's models name them.
MAX_TOKEN_INPUTS = ("max_tokens", "max_new_tokens")
# Inputs that ask an image model for several images, as Replicate's models name them (most say
# num_outputs, some num_images): what `images_asked` counts, and what the planner makes a job tell
# its outputs apart by. A model that publishes a schema gives the default there.
IMAGE_COUNT_INPUTS = ("num_outputs", "num_images")
# A language model's prompt costs at most one token per byte of its text (byte-level tokenizers
# never merge less than one byte into a token), plus what its chat template adds around it.
TEMPLATE_TOKENS = 256
# Two sums of money closer than this are the same: float dollars, not a ledger.
CENT_FRACTION = 1e-9

_DURATION = re.compile(r"(?=\d)(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


class Bounds(NamedTuple):
    """What caps one prediction's cost: its images, seconds and tokens (None: no bound)."""

    images: int = 1
    seconds: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


class Learned(NamedTuple):
    """What a job's finished predictions reported on average (None: nothing learned yet)."""

    seconds: float | None = None  # metrics.predict_time
    input_tokens: float | None = None
    output_tokens: float | None = None
    run_seconds: float | None = None  # created to completed, by the API's clock
    samples: int = 0


class Price(NamedTuple):
    """USD per prediction, image, second and million tokens; the parts add up."""

    per_prediction: float = 0.0
    per_image: float = 0.0
    per_second: float = 0.0
    per_million_input_tokens: float = 0.0
    per_million_output_tokens: float = 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Price:
        """A price from its spec or manifest form (unknown keys are the schema's business)."""
        return cls(**{name: float(data[name]) for name in PRICE_FIELDS if name in data})

    def to_json(self) -> dict[str, float]:
        """The parts that are set, as the spec writes them (recorded with each cost)."""
        return {name: part for name, part in zip(self._fields, self, strict=True) if part}

    @property
    def by_time(self) -> bool:
        """Whether what it costs depends on how long a prediction runs."""
        return self.per_second > 0

    @property
    def by_tokens(self) -> bool:
        """Whether what it costs depends on the tokens a language model reads and writes."""
        return self.per_million_input_tokens > 0 or self.per_million_output_tokens > 0

    def cost(self, metrics: Mapping[str, Any], *, files: int, succeeded: bool) -> float:
        """What one finished prediction cost, from the API's metrics (USD, estimated).

        `files`: the output's files, counted as images when the API reports no `image_count`.
        """
        total = self.per_second * _number(metrics.get("predict_time"))
        total += self.per_million_input_tokens * _number(metrics.get("input_token_count")) / 1e6
        total += self.per_million_output_tokens * _number(metrics.get("output_token_count")) / 1e6
        if succeeded:
            reported = metrics.get("image_count")
            images = _number(reported) if _is_number(reported) else files
            total += self.per_prediction + self.per_image * images
        return total

    def estimate(self, bounds: Bounds, learned: Learned) -> float | None:
        """What one prediction should cost: exact for per-prediction and per-image prices, the
        means `learned` for the rest; None while a part it pays has nothing learned yet."""
        total = self.per_prediction + self.per_image * bounds.images
        parts = (
            (self.per_second, learned.seconds),
            (self.per_million_input_tokens / 1e6, learned.input_tokens),
            (self.per_million_output_tokens / 1e6, learned.output_tokens),
        )
        for rate, mean in parts:
            if rate > 0:
                if mean is None:
                    return None
                total += rate * mean
        return total

    def ceiling(self, bounds: Bounds) -> float:
        """The most one prediction can cost within `bounds`; inf when a part it pays is
        unbounded (a per-second price without a timeout, a token price without max_tokens)."""
        total = self.per_prediction + self.per_image * bounds.images
        parts = (
            (self.per_second, bounds.seconds),
            (self.per_million_input_tokens / 1e6, bounds.input_tokens),
            (self.per_million_output_tokens / 1e6, bounds.output_tokens),
        )
        for rate, bound in parts:
            if rate > 0:
                total += math.inf if bound is None else rate * bound
        return total


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number(value: object) -> float:
    return float(value) if _is_number(value) and value > 0 else 0.0


def output_token_bound(values: Mapping[str, Any]) -> int | None:
    """The most output tokens an input lets a language model write, if it says."""
    for name in MAX_TOKEN_INPUTS:
        value = values.get(name)
        if _is_number(value) and value >= 0:
            return int(value)
    return None


def input_token_bound(values: Mapping[str, Any]) -> int:
    """The most input tokens an input can be: its text's UTF-8 bytes, and a chat template's."""
    return _text_bytes(values) + TEMPLATE_TOKENS


def _text_bytes(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    if isinstance(value, Mapping):
        return sum(_text_bytes(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(_text_bytes(item) for item in value)
    return 0


class SchemaCount(NamedTuple):
    """What a model's published input schema says of its image count (`num_outputs`, or
    `num_images`: `input`), as the pre-flight found it.

    `published` False: the API publishes no input schema for the model. `default` None: the
    schema gives the count no default (the model takes no such input). A job whose model
    nothing was recorded of has no `SchemaCount` at all (None where one is passed).
    """

    published: bool = True
    default: int | None = None
    input: str = IMAGE_COUNT_INPUTS[0]

    @classmethod
    def of_input(cls, properties: Mapping[str, Any] | None) -> SchemaCount:
        """From a Cog schema's `Input.properties` (None: the API published none)."""
        if properties is None:
            return cls(published=False)
        for name in IMAGE_COUNT_INPUTS:
            found = properties.get(name)
            if isinstance(found, Mapping):
                return cls(default=_count(found.get("default")), input=name)
        return cls()

    @classmethod
    def from_json(cls, data: object) -> SchemaCount | None:
        """One recorded in `RUN/preflight.json` (None for anything else)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("published"), bool):
            return None
        name = data.get("input")
        known = name if name in IMAGE_COUNT_INPUTS else IMAGE_COUNT_INPUTS[0]
        return cls(data["published"], _count(data.get("default")), str(known))

    def to_json(self) -> dict[str, Any]:
        return {"published": self.published, "input": self.input, "default": self.default}


def _count(value: object) -> int | None:
    """A whole number of images, or None (an int is taken as it is: a huge one would overflow
    the float `_is_number` makes of it)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def asked_by(values: Mapping[str, Any]) -> str | None:
    """The input field by which an input itself says how many images it asks for, if any."""
    return next((n for n in IMAGE_COUNT_INPUTS if _count(values.get(n)) is not None), None)


def images_asked(values: Mapping[str, Any], schema: SchemaCount | None = None) -> int:
    """The images an input asks for: its `num_outputs` (or `num_images`), else the model's
    schema default, else 1 (the one rule the plan's estimate and the run's budget count with)."""
    field = asked_by(values)
    count = _count(values.get(field)) if field is not None else None
    if count is not None:
        return count
    if schema is not None and schema.default is not None:
        return schema.default
    return 1


def count_from(values: Mapping[str, Any], schema: SchemaCount | None) -> str:
    """Which of `images_asked`'s rules gave the count: `input`, `schema` (the model's published
    schema: its default, or 1 where it has none) or `assumed` (1: nothing known of the model)."""
    if asked_by(values) is not None:
        return "input"
    return "schema" if schema is not None and schema.published else "assumed"


def count_source(schema: SchemaCount | None) -> str:
    """Where `images_asked` took the count of an input that sets none, in a few words."""
    name = schema.input if schema is not None else IMAGE_COUNT_INPUTS[0]
    if schema is None:
        return (
            f"{name} assumed 1: no model schema recorded in this folder;"
            " `batchrun plan --online` asks the API"
        )
    if not schema.published:
        return f"{name} assumed 1: the API publishes no input schema for the model"
    if schema.default is None:
        return f"{name} 1: the model's schema gives it no default"
    return f"{name} from the model's schema default ({schema.default})"


def bounds(
    values: Mapping[str, Any], timeout: float | None, schema: SchemaCount | None = None
) -> Bounds:
    """What caps the cost of a prediction of this input (`schema`: what the model's published
    schema says of `num_outputs`, if the pre-flight recorded it)."""
    return Bounds(
        images=images_asked(values, schema),
        seconds=timeout,
        input_tokens=input_token_bound(values),
        output_tokens=output_token_bound(values),
    )


def parse_duration(text: object) -> float:
    """Seconds from `90`, `90s`, `5m`, `1h30m` or `2.5m`; ValueError showing the format."""
    if _is_number(text) and text > 0:
        return float(text)
    match = _DURATION.fullmatch(text.strip()) if isinstance(text, str) else None
    seconds = 0.0
    if match is not None:
        hours, minutes, secs = (float(part) if part else 0.0 for part in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if match is None or seconds <= 0:
        raise ValueError(f"expected a duration like 90s, 5m or 1h30m; got {text!r}")
    return seconds


def money(usd: float) -> str:
    """$1.20, $0.048, $0.0014, $0: cents from a dollar up, else as many digits as it takes (up
    to a millionth of a dollar), so a sum under a budget never rounds up to it."""
    if math.isinf(usd):
        return "unbounded"
    if abs(usd) >= 1:
        return f"${usd:,.2f}"
    digits = f"{usd:.6f}".rstrip("0")
    whole, _, fraction = digits.partition(".")
    if usd == 0:
        return "$0"
    if whole in ("0", "-0") and not fraction:
        return "under $0.000001"
    return f"${whole}.{fraction.ljust(2, '0')}"


def signed_money(usd: float) -> str:
    """+$0.10 or -$1.20: what a change adds or removes."""
    return ("-" if usd < 0 else "+") + money(abs(usd))


def over(amount: float, budget: float) -> bool:
    """Whether `amount` passes `budget` (sums a billionth of a dollar apart are equal)."""
    return amount > budget + CENT_FRACTION


__all__ = [
    "ESTIMATED",
    "IMAGE_COUNT_INPUTS",
    "MAX_TOKEN_INPUTS",
    "PRICE_FIELDS",
    "Bounds",
    "Learned",
    "Price",
    "SchemaCount",
    "asked_by",
    "bounds",
    "count_from",
    "count_source",
    "images_asked",
    "input_token_bound",
    "money",
    "output_token_bound",
    "over",
    "parse_duration",
    "signed_money",
]
