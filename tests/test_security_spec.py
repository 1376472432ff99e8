"""Hostile specs: what a pull request's spec can make batchrun read, send or compute, bounded."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from batchrun.errors import SpecError
from batchrun.spec.load import load_spec

pytestmark = pytest.mark.timeout(60)
TOKEN = "r8_" + "a" * 37


def write(folder: Path, body: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def issues(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return [str(issue) for issue in caught.value.issues]


HEAD = "batchrun: 1\njobs:\n  - model: acme/flux\n"


def test_the_scan_for_pasted_tokens_is_linear(tmp_path: Path) -> None:
    # 20,000 pasted tokens in a 1 MB spec took 28 s when each was placed by a scan of every
    # value; now each is a bisection. A quadratic scan takes minutes here, not this bound.
    lines = [f"        - {TOKEN}" for _ in range(20_000)]
    body = HEAD + "    input: {prompt: '${p}'}\n    matrix:\n      p:\n" + "\n".join(lines) + "\n"
    spec = write(tmp_path, body)
    started = time.monotonic()
    found = issues(spec)
    assert time.monotonic() - started < 10
    assert len(found) == 20_000
    assert found[0] == (
        f"{spec}:7:11: jobs[0].matrix.p[0]: looks like an API token; put it in the environment "
        "(REPLICATE_API_TOKEN or the variable named by token_env) instead"
    )
    assert all(TOKEN not in issue for issue in found)


@pytest.mark.parametrize(
    ("depth", "message"),
    [
        (65, "jobs[0].input.prompt" + "[0]" * 61 + ": nested deeper than 64 levels"),
        (400, "jobs[0].input.prompt" + "[0]" * 61 + ": nested deeper than 64 levels"),
        # libyaml's own limit comes first here; either way, a spec error, not a crash.
        (5000, "not valid YAML: exceeded maximum nesting depth (while increasing flow level"),
    ],
)
def test_a_deeply_nested_spec_is_a_spec_error(tmp_path: Path, depth: int, message: str) -> None:
    body = HEAD + "    input:\n      prompt: " + "[" * depth + "1" + "]" * depth + "\n"
    found = issues(write(tmp_path, body))
    assert len(found) == 1
    assert message in found[0]


def test_nesting_within_the_limit_loads(tmp_path: Path) -> None:
    body = HEAD + "    input:\n      prompt: x\n      deep: " + "[" * 50 + "1" + "]" * 50 + "\n"
    assert load_spec(write(tmp_path, body)).jobs[0].input["prompt"] == "x"
