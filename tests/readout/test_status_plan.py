"""`status` counts the current spec's whole plan, with the numbers `plan` gives, and exits 0 only
when every planned prediction succeeded (issue 17, item 2): through the real command line."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from runs import TOKEN, RunCli, write_spec

from batchrun.sandbox import Sandbox

SPEC = """
    batchrun: 1
    concurrency: 8
    files: "${job}/${key}-${index}${ext}"
    jobs:
      - id: pics
        model: acme/painter
        input: {prompt: "p${i}", width: 64, height: 64}
        matrix:
          i: {range: [0, 10]}
    """


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REPLICATE_API_TOKEN", TOKEN)
    monkeypatch.delenv("REPLICATE_BASE_URL", raising=False)


def cli(run_cli: RunCli, *argv: str) -> tuple[int, str]:
    code, out, err = run_cli(*argv)
    assert code in (0, 1), err
    return code, out


def plan_counts(run_cli: RunCli, spec: Path) -> dict[str, int]:
    """What `plan --json` says of each planned key, counted by state."""
    code, out = cli(run_cli, "plan", str(spec), "--json")
    assert code == 0
    return dict(Counter(json.loads(line)["state"] for line in out.splitlines()))


def status_counts(run_cli: RunCli, spec: Path) -> tuple[int, dict[str, int]]:
    code, out = cli(run_cli, "status", str(spec), "--json")
    states = json.loads(out)["states"]
    return code, {state: n for state, n in states.items() if n}


def test_status_counts_the_whole_plan_as_plan_does(
    tmp_path: Path, sandbox: Sandbox, run_cli: RunCli
) -> None:
    spec = write_spec(tmp_path, SPEC)
    code, _ = cli(run_cli, "run", str(spec), "--base-url", sandbox.base_url, "--limit", "3")
    assert code == 0

    code, out = cli(run_cli, "status", str(spec), "--json")
    data = json.loads(out)
    assert code == 1  # seven of the plan never started
    assert (data["planned"], data["done"], data["not_started"]) == (10, 3, 7)
    assert (data["total"], data["complete"]) == (3, False)  # `total` still counts records
    assert status_counts(run_cli, spec)[1] == plan_counts(run_cli, spec) == {"done": 3, "new": 7}
    code, out = cli(run_cli, "status", str(spec))
    assert "3 of 10 done, 7 not started" in out.splitlines()
    code, out = cli(run_cli, "plan", str(spec))
    assert "total: 10 predictions: 7 new, 3 done, 0 in flight, 0 failed, 0 to download" in out

    # A changed `files` template: plan and status both count the keys to move.
    spec.write_text(
        spec.read_text().replace('"${job}/${key}-${index}${ext}"', '"moved/${key}-${index}${ext}"')
    )
    code, counts = status_counts(run_cli, spec)
    assert counts == plan_counts(run_cli, spec) == {"move": 3, "new": 7}
    code, out = cli(run_cli, "status", str(spec))
    assert "0 of 10 done, 7 not started, 3 to move" in out.splitlines()

    # The rest run: every planned prediction succeeded, and status says so with 0.
    code, _ = cli(run_cli, "run", str(spec), "--base-url", sandbox.base_url)
    assert code == 0
    code, counts = status_counts(run_cli, spec)
    assert (code, counts) == (0, {"done": 10})
    assert plan_counts(run_cli, spec) == {"done": 10}
    code, out = cli(run_cli, "status", str(spec))
    assert code == 0
    assert re.search(r"^10 of 10 done$", out, re.MULTILINE)
