"""Keys: the canonical JSON they hash, and local files counted by their content."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from runs import write_spec

from batchrun.planner import keys as keys_module
from batchrun.planner.expand import iter_plan
from batchrun.planner.keys import FileHasher, FileInput, canonical_json, key_json, prediction_key
from batchrun.spec.load import load_spec
from batchrun.spec.target import Target
from batchrun.spec.template import RenderError


def test_prediction_key_is_the_documented_hash() -> None:
    target = Target("deployment", "acme", "dep")
    document = {"target": {"deployment": "acme/dep"}, "input": {"b": "é", "a": [1.5]}, "repeat": 2}
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert prediction_key(target, {"b": "é", "a": [1.5]}, 2) == expected


def test_a_file_input_keys_by_content_and_shows_its_path() -> None:
    file = FileInput(Path("/x/cat.png"), "cat.png", "ab", 2)
    assert key_json({"i": file}) == '{"i":{"file":{"sha256":"ab","size":2}}}'
    assert canonical_json({"i": file}) == '{"i":{"file":"cat.png","sha256":"ab","size":2}}'
    moved = FileInput(Path("/y/elsewhere.png"), "elsewhere.png", "ab", 2)
    target = Target("model", "a", "b")
    assert prediction_key(target, {"i": file}, 0) == prediction_key(target, {"i": moved}, 0)


def test_canonical_json() -> None:
    value = {"b": [1.5, None, "é"], "a": {"d": True, "c": FileInput(Path("/x"), "x.png", "ab", 2)}}
    assert canonical_json(value) == (
        '{"a":{"c":{"file":"x.png","sha256":"ab","size":2},"d":true},"b":[1.5,null,"é"]}'
    )
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_json({"x": float("nan")})


@pytest.mark.parametrize(
    "value", ['a"\\\u2028é', 0, -3, 10**40, 1.0, 1e-7, True, None, [], {}, {"b": {"a": [None]}}]
)
def test_canonical_json_is_json_dumps_with_the_documented_options(value: object) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_json(value) == key_json(value) == expected


def test_each_file_is_hashed_once(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_spec(
        folder,
        "batchrun: 1\njobs:\n  - model: a/b\n    input: {image: {file: '${img}'}, n: '${n}'}\n"
        "    matrix: {n: {range: [0, 50]}, img: {glob: '*.png'}}\n",
        files={"a.png": "a", "b.png": "b"},
        as_is=True,
    )
    hashed: list[Path] = []
    real = keys_module._hash

    def counting(path: Path) -> tuple[str, int]:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(keys_module, "_hash", counting)
    assert len(list(iter_plan(load_spec("spec.yaml")))) == 100
    assert sorted(p.name for p in hashed) == ["a.png", "b.png"]


def test_what_is_not_a_file(folder: Path) -> None:
    (folder / "inputs").mkdir()
    (folder / "a.png").write_bytes(b"png")
    hasher = FileHasher(folder)
    made = hasher.make("a.png", ("image", "file"))
    assert made == FileInput(folder / "a.png", "a.png", hashlib.sha256(b"png").hexdigest(), 3)
    assert hasher.make("a.png", ("other",)) is made
    for written, message in [
        ("inputs", "'inputs' is a folder, not a file"),
        ("b.png", "file 'b.png' does not exist"),
        (3, "expected the path of a file, got 3"),
        ("", "expected the path of a file, got ''"),
    ]:
        with pytest.raises(RenderError) as caught:
            hasher.make(written, ("image", "file"))
        assert (caught.value.message, caught.value.where) == (message, ("image", "file"))
