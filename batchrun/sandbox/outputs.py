"""What a prediction returns: deterministic for the same model, version and input.

Image models return `num_outputs` URLs of PNGs served under `/delivery/{id}/out-{i}.png`;
language models return a token list that joins into a sentence made from the prompt. The
reserved input `sandbox_output` picks another shape (see `batchrun.sandbox`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

OUTPUT_MODES = ("images", "tokens", "text", "dict", "number", "none")
DEFAULT_SIDE = 256

_OPENERS = ("Here is a thought about", "A short note on", "Consider", "Imagine")
_ADJECTIVES = ("quiet", "bright", "curious", "ancient", "gentle", "restless", "golden")
_NOUNS = ("river", "lantern", "meadow", "signal", "harbor", "engine", "garden")
_VERBS = ("hums", "waits", "glows", "drifts", "listens", "turns", "wakes")
_ADVERBS = ("softly", "at dawn", "without hurry", "in the rain", "all night", "on cue")


def input_digest(model: str, version_id: str, inputs: Mapping[str, Any]) -> bytes:
    """A digest of what determines the output; the reserved `sandbox_*` keys do not count."""
    kept = {k: v for k, v in inputs.items() if not k.startswith("sandbox_")}
    text = json.dumps([model, version_id, kept], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).digest()


def output_mode(kind: str, inputs: Mapping[str, Any]) -> str:
    """The output shape: `sandbox_output` if given, else images or tokens by model kind."""
    chosen = inputs.get("sandbox_output")
    if isinstance(chosen, str):
        return chosen
    return "images" if kind == "image" else "tokens"


def file_names(mode: str, inputs: Mapping[str, Any], default: int = 1) -> list[str]:
    """The output files a prediction of this mode serves (`default`: the images the model
    makes when the input sets no `num_outputs`)."""
    if mode == "images":
        count = inputs.get("num_outputs", default)
        return [f"out-{i}.png" for i in range(count if isinstance(count, int) else default)]
    if mode == "dict":
        return ["out-0.png"]
    return []


def image_size(inputs: Mapping[str, Any], cap: int) -> tuple[int, int]:
    """Width and height from `width`/`height` or `aspect_ratio`, at most `cap` per side."""
    width, height = inputs.get("width"), inputs.get("height")
    ratio = inputs.get("aspect_ratio")
    if not isinstance(width, int) and not isinstance(height, int) and isinstance(ratio, str):
        match = re.fullmatch(r"(\d+):(\d+)", ratio)
        if match and int(match.group(1)) > 0 and int(match.group(2)) > 0:
            w, h = int(match.group(1)), int(match.group(2))
            scale = DEFAULT_SIDE / max(w, h)
            width, height = max(1, round(w * scale)), max(1, round(h * scale))
    w = width if isinstance(width, int) else DEFAULT_SIDE
    h = height if isinstance(height, int) else DEFAULT_SIDE
    return min(w, cap), min(h, cap)


def image_seed(digest: bytes, name: str) -> bytes:
    """The seed of one output image: the input's digest and the file's name."""
    return hashlib.sha256(digest + name.encode()).digest()


def sentence(digest: bytes, prompt: object) -> str:
    """A sentence made from the prompt's words and a few picked by the digest."""
    words = re.findall(r"[A-Za-z0-9']+", prompt.lower())[:8] if isinstance(prompt, str) else []
    subject = " ".join(words) or "nothing in particular"
    picks = [digest[i] for i in range(5)]
    return (
        f"{_OPENERS[picks[0] % len(_OPENERS)]} {subject}: the "
        f"{_ADJECTIVES[picks[1] % len(_ADJECTIVES)]} {_NOUNS[picks[2] % len(_NOUNS)]} "
        f"{_VERBS[picks[3] % len(_VERBS)]} {_ADVERBS[picks[4] % len(_ADVERBS)]}."
    )


def tokens(text: str) -> list[str]:
    """Split text like a streaming language model: each word keeps its leading space."""
    return re.findall(r"\s*\S+", text)


def max_tokens(inputs: Mapping[str, Any]) -> int | None:
    """The most tokens a language model may write: `max_tokens` (or `max_new_tokens`)."""
    for name in ("max_tokens", "max_new_tokens"):
        value = inputs.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


def token_counts(mode: str, digest: bytes, inputs: Mapping[str, Any]) -> dict[str, int]:
    """The token metrics Replicate reports for a language model's prediction."""
    if mode not in ("tokens", "text"):
        return {}
    prompt = inputs.get("prompt")
    written = build_output(mode, digest, inputs, "")
    count = len(written) if isinstance(written, list) else len(tokens(str(written)))
    return {
        "input_token_count": len(tokens(prompt)) if isinstance(prompt, str) else 0,
        "output_token_count": count,
    }


def score(digest: bytes) -> float:
    """A number in [0, 1) from the digest."""
    return round(int.from_bytes(digest[5:9], "big") / 2**32, 6)


def build_output(
    mode: str, digest: bytes, inputs: Mapping[str, Any], file_url: str, default: int = 1
) -> object:
    """The `output` of a succeeded prediction; `file_url` is the prefix of its files' URLs
    (`default`: the images the model makes when the input sets no `num_outputs`)."""
    names = file_names(mode, inputs, default)
    urls = [f"{file_url}/{name}" for name in names]
    text = sentence(digest, inputs.get("prompt"))
    if mode == "images":
        return urls
    if mode == "tokens":
        return tokens(text)[: max_tokens(inputs)]
    if mode == "text":
        return text
    if mode == "dict":
        return {"image": urls[0], "caption": text, "score": score(digest)}
    if mode == "number":
        return round(score(digest) * 100, 4)
    return None
