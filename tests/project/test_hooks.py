"""`.pre-commit-hooks.yaml`, run by the real `pre-commit` tool in a temporary git repo.

The repo's `.pre-commit-config.yaml` names this checkout as a user's names
`repo: https://github.com/...`: `pre-commit run` installs the hook from it into a fresh virtual
environment with pip, then runs it on the files given. The checkout goes in as it is on disk,
uncommitted changes included (as `pre-commit try-repo` takes them), as a snapshot repository
with one commit: the hook is installed once, and the three runs below share that environment
(`try-repo` would build a new one for each run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runs import Git

ROOT = Path(__file__).resolve().parents[2]
# pre-commit builds batchrun and its dependencies from PyPI into a new environment: about a
# minute here, a few on a slow machine; past this, something is stuck (a registry that does not
# answer). The test's own timeout leaves room for the two runs after the install.
INSTALL_TIMEOUT = 480

pytestmark = [pytest.mark.slow, pytest.mark.timeout(INSTALL_TIMEOUT + 120)]


def snapshot(checkout: Path, into: Path, git: Git) -> str:
    """`checkout` as it is on disk (tracked files and new ones git does not ignore) committed
    in a new repository at `into`; the commit's id, for a pre-commit config's `rev:`."""
    listed = git(checkout, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        source = checkout / name
        if source.is_file():  # a tracked file deleted and not yet staged is left out
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    git(into, "init", "-q")
    git(into, "add", "-A")
    git(into, "commit", "-q", "--no-verify", "-m", "snapshot")
    return git(into, "rev-parse", "HEAD").strip()


def test_the_validate_hook_passes_a_good_spec_and_fails_a_broken_one(
    tmp_path: Path, git: Git
) -> None:
    hooks = tmp_path / "hooks"
    rev = snapshot(ROOT, hooks, git)
    config = tmp_path / "pre-commit-config.yaml"  # outside the repo: never staged or checked
    config.write_text(
        f"repos:\n  - repo: {hooks}\n    rev: {rev}\n    hooks:\n      - id: batchrun-validate\n"
    )
    repo = tmp_path / "repo"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "good.yaml").write_text(
        "batchrun: 1\njobs:\n  - model: acme/painter\n    input: {prompt: hello}\n"
    )
    (repo / "specs" / "bad.yaml").write_text(
        "batchrun: 1\njobs:\n  - model: acme/painter\n    input: {prompt: ${nope}}\n"
    )
    (repo / "notes.yaml").write_text("not: a spec\n")  # outside specs/: the hook leaves it
    git(repo, "init", "-q")
    git(repo, "add", ".")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PRE_COMMIT_COLOR": "never",
    }
    command = [sys.executable, "-m", "pre_commit", "run", "--config", str(config)]

    def hook(*files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, "--files", *files] if files else command,  # no files: what is staged
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
        )

    good = hook("specs/good.yaml", "notes.yaml")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "batchrun validate" in good.stdout
    assert "Passed" in good.stdout

    bad = hook("specs/good.yaml", "specs/bad.yaml")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Failed" in bad.stdout
    assert "specs/bad.yaml:4:" in bad.stdout
    assert "specs/good.yaml: ok (1 prediction in 1 job)" in bad.stdout

    # A commit that stages only a value file: the hook runs, and checks the spec that reads it.
    (repo / "specs" / "bad.yaml").unlink()
    (repo / "specs" / "data").mkdir()
    (repo / "specs" / "data" / "prompts.csv").write_text("prompt\na fox\na boat\n")
    (repo / "specs" / "sweep.yaml").write_text(
        "batchrun: 1\njobs:\n  - model: acme/writer\n    input: {prompt: '${row.prompt}'}\n"
        "    matrix: {row: {csv: data/prompts.csv}}\n"
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", "a sweep")
    (repo / "specs" / "data" / "prompts.csv").write_text('prompt\na fox\n"a boat\n')
    git(repo, "add", "specs/data/prompts.csv")

    staged = hook()
    assert staged.returncode == 1, staged.stdout + staged.stderr
    assert "(no files to check)" not in staged.stdout
    assert "specs/data/prompts.csv: a value file, read by specs/sweep.yaml" in staged.stdout
    assert "specs/data/prompts.csv:3:1: jobs[0].matrix.row: " in staged.stdout
