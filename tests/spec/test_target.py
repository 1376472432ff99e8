"""Target: model, pinned model, bare version and deployment references."""

from __future__ import annotations

import re

import pytest

from batchrun.spec.target import Target

VERSION = "2a6b576af31790b470f0a8442e1e9791213fa13799cbb65a9fc1436e96389574"


def test_model_by_name() -> None:
    target = Target.parse("model", "black-forest-labs/flux-schnell")
    assert target == Target("model", "black-forest-labs", "flux-schnell")
    assert target.to_json() == {"model": "black-forest-labs/flux-schnell"}
    assert str(target) == "black-forest-labs/flux-schnell"
    assert target.model == "black-forest-labs/flux-schnell"


def test_model_pinned_to_a_version_is_a_version_target_that_knows_its_model() -> None:
    target = Target.parse("model", f"lucataco/flux-lora:{VERSION}")
    assert target == Target("version", "lucataco", "flux-lora", VERSION)
    assert target.to_json() == {"model": "lucataco/flux-lora", "version": VERSION}
    assert str(target) == f"lucataco/flux-lora:{VERSION}"


def test_bare_version() -> None:
    target = Target.parse("version", VERSION)
    assert target == Target("version", version=VERSION)
    assert target.to_json() == {"version": VERSION}
    assert str(target) == VERSION
    assert target.model == ""


def test_deployment() -> None:
    target = Target.parse("deployment", "acme/my-flux")
    assert target == Target("deployment", "acme", "my-flux")
    assert target.to_json() == {"deployment": "acme/my-flux"}
    assert str(target) == "deployment acme/my-flux"


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (
            "model",
            "flux-schnell",
            "expected owner/name or owner/name:VERSION (VERSION is 64 lowercase hex characters),"
            " like black-forest-labs/flux-schnell; got 'flux-schnell'",
        ),
        (
            "model",
            "acme/flux:abc",
            "expected owner/name or owner/name:VERSION (VERSION is 64 lowercase hex characters),"
            " like black-forest-labs/flux-schnell; got 'acme/flux:abc'",
        ),
        (
            "version",
            VERSION.upper(),
            f"expected a version id: 64 lowercase hex characters; got {VERSION.upper()!r}",
        ),
        ("deployment", "acme/dep:1", "expected owner/name, like acme/my-flux; got 'acme/dep:1'"),
        ("deployment", "/dep", "expected owner/name, like acme/my-flux; got '/dep'"),
        ("space", "a/b", "unknown target kind 'space'; expected model, version or deployment"),
    ],
)
def test_malformed_references_show_the_expected_format(kind: str, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Target.parse(kind, text)
