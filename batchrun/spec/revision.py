"""A spec as it was at a git revision (`plan --diff REV`), and the commit a spec is at now.

The spec and every file it names (value files, globbed and `{file: ...}` inputs) are read
through git: the revision's tree is checked out into a temporary folder that mirrors the
repository (through a temporary index, so the repository's own index and work tree are left
alone),
so every relative path in the old spec resolves exactly as it did at that revision, and keys
(which hash input files by content) come out as they would have then. Nothing in the working
copy or the repository is changed.

    with spec_at_revision("specs/sweep.yaml", "origin/main") as old:
        old.spec  # None when the file did not exist at that revision

    git_state(spec.path)  # GitState(commit, dirty), for a dataset's provenance; None outside git
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from batchrun.errors import SpecError, UsageError
from batchrun.humanize import shown_path
from batchrun.spec.allow import Allowances
from batchrun.spec.load import Spec, load_spec

# A git command that has not answered in this long is stuck (a credential prompt, a lock):
# fail with a message rather than hang a CI job. Archiving a large tree takes seconds.
GIT_TIMEOUT = 120.0


@dataclass(frozen=True)
class SpecAtRevision:
    """The spec at `revision` (None if the file was not there or does not load) and the commit
    it names; `problem`: why a spec that is there does not load, in one line."""

    revision: str
    commit: str
    spec: Spec | None
    problem: str | None = None


@contextlib.contextmanager
def spec_at_revision(
    path: str | os.PathLike[str], revision: str, allow: Allowances | None = None
) -> Iterator[SpecAtRevision]:
    """Load the spec at `path` as it is at git `revision`; its files live until the block ends.

    `allow`: what the command line allows beyond the spec's folder, as for the current spec.
    """
    absolute = Path(os.path.abspath(path))
    try:
        top = Path(_git(absolute.parent, "rev-parse", "--show-toplevel").strip())
    except UsageError:
        raise UsageError(f"--diff: {shown_path(path)} is not in a git repository") from None
    commit = _commit(top, revision)
    inside = absolute.resolve().relative_to(top.resolve()).as_posix()
    with tempfile.TemporaryDirectory(prefix="batchrun-rev-") as temp:
        root = Path(temp) / top.name
        root.mkdir()
        _extract(top, commit, root)
        old = root / inside
        problem = None
        try:
            spec = (
                _load(old, f"{revision}:{inside}", _moved(allow, top, root))
                if old.is_file()
                else None
            )
        except SpecError as error:
            # A base broken at the revision (or naming a file it lacks) is no reason to leave a
            # pull request that fixes it without a diff: it compares as an empty plan.
            spec, problem = None, error.one_line()
        if spec is not None:
            # Messages name the file a person knows, with the revision it came from.
            spec = dataclasses.replace(spec, display_path=f"{revision}:{inside}")
        yield SpecAtRevision(revision, commit, spec, problem)


@dataclass(frozen=True)
class GitState:
    """The commit a work tree is at, whether its tracked files differ from it, and where a
    file sits in it (a path that means the same on every clone)."""

    commit: str
    dirty: bool
    path: str


def git_state(path: str | os.PathLike[str]) -> GitState | None:
    """Where the git work tree holding the file `path` stands; None when it is in none, or git
    is missing or fails (a dataset's provenance then says "no git" rather than stopping)."""
    absolute = Path(os.path.abspath(path))
    try:
        top = Path(_git(absolute.parent, "rev-parse", "--show-toplevel").strip())
        commit = _git(top, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").strip()
        # Untracked files are left out, as `git describe --dirty` does: a run folder or an
        # export inside the repository is not a change to what made them.
        changes = _git(top, "status", "--porcelain", "--untracked-files=no")
        inside = absolute.resolve().relative_to(top.resolve()).as_posix()
    except (UsageError, ValueError):
        return None
    return GitState(commit, bool(changes.strip()), inside) if commit else None


def _moved(allow: Allowances | None, top: Path, root: Path) -> Allowances | None:
    """The allowances for the revision's copy of the repo: a path allowed inside the work tree
    is allowed at the same place in the copy too."""
    if allow is None:
        return None
    real_top = top.resolve()
    copies = []
    for path in allow.outside:
        try:
            copies.append(root / path.resolve().relative_to(real_top))
        except ValueError:
            continue
    return dataclasses.replace(allow, outside=(*allow.outside, *copies))


def _load(path: Path, shown: str, allow: Allowances | None) -> Spec:
    try:
        return load_spec(path, allow)
    except SpecError as error:
        # Place each issue in the file as the revision names it, not in the temporary copy.
        temp = shown_path(path)
        raise SpecError(
            dataclasses.replace(issue, file=shown) if issue.file == temp else issue
            for issue in error.issues
        ) from None


def _commit(top: Path, revision: str) -> str:
    try:
        return _git(top, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()
    except UsageError:
        raise UsageError(f"--diff {revision}: no such git revision in {top}") from None


def _extract(top: Path, commit: str, root: Path) -> None:
    # A throwaway index: read-tree fills it with the revision's tree (no work-tree edits, no
    # untracked files) and checkout-index writes it under `root` through the repository's
    # checkout filters (Git LFS, line endings), as a checkout would. `git archive` would drop
    # export-ignore files and expand export-subst ones: not the files the spec read.
    with tempfile.TemporaryDirectory(prefix="batchrun-index-") as folder:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(folder, "index")}
        _run(["git", "-C", str(top), "read-tree", commit], stdout=subprocess.DEVNULL, env=env)
        prefix = f"--prefix={root}{os.sep}"
        checkout = ["git", "-C", str(top), "checkout-index", "--all", prefix]
        _run(checkout, stdout=subprocess.DEVNULL, env=env)


def _git(cwd: Path, *args: str) -> str:
    result = _run(["git", "-C", str(cwd), *args], stdout=subprocess.PIPE)
    return result.stdout.decode("utf-8", "replace")


def _run(
    command: list[str], *, stdout: int | IO[bytes], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    try:
        result: subprocess.CompletedProcess[bytes] = subprocess.run(
            command,
            stdout=stdout,
            stderr=subprocess.PIPE,
            timeout=GIT_TIMEOUT,
            check=False,
            env=env,
        )
    except FileNotFoundError:
        raise UsageError("--diff needs git, and git is not installed") from None
    except subprocess.TimeoutExpired:
        said = " ".join(command[3:])
        raise UsageError(f"--diff: `git {said}` took over {GIT_TIMEOUT:.0f}s") from None
    if result.returncode != 0:
        errors = result.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = errors[-1] if errors else f"exit {result.returncode}"
        raise UsageError(f"--diff: git {' '.join(command[3:4])} failed: {reason}")
    return result
