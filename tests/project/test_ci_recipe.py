"""docs/github-actions/batchrun-plan.yml: its validate and plan steps run as written, by bash,
in a clone whose pull-request branch edits a spec of its origin's main."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from runs import TOKEN, Git

from batchrun.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "docs" / "github-actions" / "batchrun-plan.yml"
SPEC = "batchrun: 1\njobs:\n  - id: pics\n    model: acme/painter\n    input: {prompt: '${s}'}\n"


def step(name: str, job: str = "plan") -> dict[str, Any]:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return next(s for s in steps if s.get("name") == name)


@pytest.mark.slow
def test_the_workflow_validates_and_writes_the_plan_comment(tmp_path: Path, git: Git) -> None:
    origin = tmp_path / "origin"
    (origin / "specs").mkdir(parents=True)
    (origin / "specs" / "a.yaml").write_text(SPEC + "    matrix: {s: [fox, boat]}\n")
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "specs")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "checkout", "-q", "-b", "pr")
    (clone / "specs" / "a.yaml").write_text(SPEC + "    matrix: {s: [fox, kite, bell]}\n")
    git(clone, "commit", "-q", "-am", "edit")
    summary = tmp_path / "summary.md"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_STEP_SUMMARY": str(summary),
        "REPLICATE_BASE_URL": "",  # validate shows the API a run would use: the default here
    }

    validate = step("Validate the specs")
    done = subprocess.run(
        ["bash", "-c", validate["run"]], cwd=clone, env=env, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (
        0,
        "specs/a.yaml: ok (3 predictions in 1 job); API https://api.replicate.com (default), "
        "token from $REPLICATE_API_TOKEN (default)\n",
    )

    plan = step("Plan against the base branch")
    base = plan["env"]["BASE"].replace("${{ github.base_ref }}", "main")
    done = subprocess.run(
        ["bash", "-c", plan["run"]],
        cwd=clone,
        env={**env, "BASE": base},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    comment = (clone / "plan.md").read_text()
    commit = git(clone, "rev-parse", "origin/main").strip()[:12]
    assert comment.startswith(f"### batchrun plan: `specs/a.yaml` against `origin/main` ({commit})")
    assert "| `pics` | 2 | 0 | 1 | 1 | no recorded runs |" in comment
    assert summary.read_text() == comment
    # The comment step posts that file.
    assert "--body-file plan.md" in step("Comment on the pull request")["run"]


@pytest.mark.slow
def test_the_compare_job_samples_both_sides_and_writes_the_page(
    tmp_path: Path, sandbox: Sandbox, git: Git
) -> None:
    origin = tmp_path / "origin"
    (origin / "specs").mkdir(parents=True)
    body = "batchrun: 1\njobs:\n  - id: pics\n    model: acme/painter\n"
    before = (
        body + "    input: {prompt: '${s}', width: 64, height: 64}\n    matrix: {s: [fox, boat]}\n"
    )
    (origin / "specs" / "a.yaml").write_text(before)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", ".")
    git(origin, "commit", "-q", "-m", "specs")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    git(clone, "checkout", "-q", "-b", "pr")
    (clone / "specs" / "a.yaml").write_text(before.replace("'${s}'", "'${s}, at dusk'"))
    git(clone, "commit", "-q", "-am", "edit")
    compare = step("Sample before and after, side by side", "compare")
    workflow = yaml.safe_load(WORKFLOW.read_text())
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_WORKSPACE": str(clone),
        "BASE": compare["env"]["BASE"].replace("${{ github.base_ref }}", "main"),
        "SAMPLE": workflow["jobs"]["compare"]["env"]["SAMPLE"],
        "REPLICATE_API_TOKEN": TOKEN,
        "REPLICATE_BASE_URL": sandbox.base_url,  # the sandbox plays the API
    }

    done = subprocess.run(
        ["bash", "-c", compare["run"]], cwd=clone, env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    page = (clone / "review" / "a.html").read_text()
    assert "<dt>pairs</dt><dd>2: 2 asked differently, 0 the same</dd>" in page
    assert '<code class="new">fox, at dusk</code>' in page
    assert page.count('<img src="data:image/png;base64,') == 4
