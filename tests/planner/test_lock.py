from __future__ import annotations

from pathlib import Path

import anyio
import httpx
import pytest
from runs import TOKEN, records, run_spec, write_spec

from batchrun.api.client import Client
from batchrun.engine.pins import resolve_pins
from batchrun.errors import SpecError
from batchrun.planner.lock import Pin, lock_path, read_lock, write_lock
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

SPEC = """
batchrun: 1
jobs:
  - model: acme/painter
    input: {prompt: "p${i}"}
    matrix: {i: [1, 2]}
  - model: black-forest-labs/flux-schnell
    input: {prompt: "official"}
  - version: 5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa
    input: {prompt: "already pinned"}
"""


def lock(spec_path: Path, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> Path:
    spec = load_spec(spec_path)

    async def resolve() -> list[Pin]:
        async with Client(base_url, TOKEN, transport=transport) as client:
            return await resolve_pins(spec, client)

    return write_lock(spec, anyio.run(resolve))


def test_lock_pins_models_and_explains_what_it_cannot_pin(tmp_path: Path, sandbox: Sandbox) -> None:
    spec_path = write_spec(tmp_path, SPEC)
    path = lock(spec_path, sandbox.base_url)
    assert path == tmp_path / "spec.yaml.lock" == lock_path(spec_path)
    latest = sandbox.state.model("acme", "painter").latest.id
    assert path.read_text() == (
        "# Written by `batchrun lock spec.yaml`: the version each model of the spec\n"
        "# runs. Commit it beside the spec; lock again to move to newer versions.\n"
        "batchrun_lock: 1\n"
        "models:\n"
        "  acme/painter:\n"
        f"    version: {latest}\n"
        "  black-forest-labs/flux-schnell:\n"
        "    unpinned: 'an official model: it always runs its latest version'\n"
        "    version: null\n"
    )
    before = path.read_bytes()
    lock(spec_path, sandbox.base_url)
    assert path.read_bytes() == before  # nothing changed, nothing to diff


def test_the_pinned_version_is_used_after_the_latest_one_changes(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    spec_path = write_spec(tmp_path, SPEC)
    lock(spec_path, sandbox.base_url)
    pinned = read_lock(spec_path)
    assert pinned is not None
    version = pinned.pins["acme/painter"].version

    run_spec(spec_path, sandbox, out=tmp_path / "before")
    newer = sandbox.bump_version("acme", "painter")
    assert newer != version
    run_spec(spec_path, sandbox, out=tmp_path / "after")

    for out in ("before", "after"):
        painter = [r for r in records(tmp_path / out).values() if r.job == "painter"]
        assert [r.version for r in painter] == [version, version]
        assert {r.status for r in painter} == {"succeeded"}
    keys_before = set(records(tmp_path / "before"))
    assert keys_before == set(records(tmp_path / "after"))  # locking does not change keys

    lock_path(spec_path).unlink()
    run_spec(spec_path, sandbox, out=tmp_path / "unlocked")
    painter = [r for r in records(tmp_path / "unlocked").values() if r.job == "painter"]
    assert [r.version for r in painter] == [newer, newer]


def test_a_proxy_without_the_models_endpoint_leaves_models_unpinned(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"title": "Not found", "detail": "no", "status": 404})

    spec_path = write_spec(tmp_path, SPEC)
    lock(spec_path, "https://proxy.example/replicate", httpx.MockTransport(handler))
    pinned = read_lock(spec_path)
    assert pinned is not None
    assert pinned.pins["acme/painter"] == Pin(
        "acme/painter", None, "the API answered 404 (no such model here, or no models endpoint)"
    )


def test_a_broken_lock_file_stops_before_anything_is_sent(tmp_path: Path) -> None:
    spec_path = write_spec(tmp_path, SPEC)
    lock_path(spec_path).write_text("batchrun_lock: 1\nmodels:\n  acme/painter: {version: abc}\n")
    with pytest.raises(SpecError) as caught:
        read_lock(spec_path)
    assert str(caught.value) == (
        f"{lock_path(spec_path)}:1:1: models.acme/painter.version is not a 64-character "
        "version; run `batchrun lock` again"
    )
