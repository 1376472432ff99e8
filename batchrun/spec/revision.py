"""A spec as it was at a git revision (`plan --diff REV`), and the commit a spec is at now.

The spec and every file it names (value files, globbed and `{file: ...}` inputs) are read
through git: the files the spec may read (its folder, and folders the command line allows)
are checked out of the revision's tree into a temporary folder that mirrors the repository
(through a temporary index, so the repository's own index and work tree are left alone), up
to MAX_REVISION_BYTES, so every relative path in the old spec resolves exactly as it did at
that revision, and keys
(which hash input files by content) come out as they would have then. Nothing in the working
copy or the repository is changed.

    with spec_at_revision("specs/sweep.yaml", "origin/main") as old:
        old.spec  # None when the file did not exist at that revision

    git_state(spec.path)  # GitState(commit, dirty), for a dataset's provenance; None outside git
"""

from __future__ import annotations

import contextlib
import os
import posixpath
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
# Bytes of files copied from a revision to plan it: a spec's folder with its value files and
# inputs is megabytes; past a gigabyte it is a data store, and the copy would fill the disk.
MAX_REVISION_BYTES = 1 << 30


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
        _extract(top, commit, root, _read_from(inside, allow, top))
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
            spec = spec._replace(display_path=f"{revision}:{inside}")
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
    return allow._replace(outside=(*allow.outside, *copies))


def _load(path: Path, shown: str, allow: Allowances | None) -> Spec:
    try:
        return load_spec(path, allow)
    except SpecError as error:
        # Place each issue in the file as the revision names it, not in the temporary copy.
        temp = shown_path(path)
        raise SpecError(
            issue._replace(file=shown) if issue.file == temp else issue for issue in error.issues
        ) from None


def _commit(top: Path, revision: str) -> str:
    try:
        return _git(top, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()
    except UsageError:
        raise UsageError(f"--diff {revision}: no such git revision in {top}") from None


def _read_from(inside: str, allow: Allowances | None, top: Path) -> list[str]:
    """The folders (relative to the repository's top) a spec at `inside` may read: its own,
    and those the command line allows that lie in the repository."""
    folders = [posixpath.dirname(inside) or "."]
    real_top = top.resolve()
    for path in allow.outside if allow else ():
        try:
            folders.append(path.resolve().relative_to(real_top).as_posix())
        except ValueError:
            continue  # outside the repository: not in the revision at all
    return folders


def _extract(top: Path, commit: str, root: Path, folders: list[str]) -> None:
    # Only what the spec may read (its folder, and allowed folders in the repository), never
    # the whole tree: a 4 MB repository held 1 GB of data beside its specs. And only up to
    # MAX_REVISION_BYTES. A throwaway index: read-tree fills it with the revision's tree (no
    # work-tree edits, no untracked files) and checkout-index writes the chosen files under
    # `root` through the repository's checkout filters (Git LFS, line endings), as a checkout
    # would. `git archive` would drop export-ignore files and expand export-subst ones.
    listing = ["git", "-C", str(top), "ls-tree", "-r", "-l", "-z", commit, "--", *folders]
    paths: list[bytes] = []
    total = 0
    for entry in _run(listing, stdout=subprocess.PIPE).stdout.split(b"\0"):
        meta, _, name = entry.partition(b"\t")
        fields = meta.split()
        if len(fields) != 4 or fields[1] != b"blob":
            continue  # the empty end, or a submodule (a commit): nothing a spec reads
        total += int(fields[3]) if fields[3].isdigit() else 0
        if total > MAX_REVISION_BYTES:
            raise UsageError(
                f"--diff: the files the spec may read at {commit[:12]} ({', '.join(folders)})"
                f" add up to more than {MAX_REVISION_BYTES:,} bytes; batchrun does not copy"
                " that much to compare a plan"
            )
        paths.append(name)
    with tempfile.TemporaryDirectory(prefix="batchrun-index-") as folder:
        env = {**os.environ, "GIT_INDEX_FILE": os.path.join(folder, "index")}
        _run(["git", "-C", str(top), "read-tree", commit], stdout=subprocess.DEVNULL, env=env)
        prefix = f"--prefix={root}{os.sep}"
        checkout = ["git", "-C", str(top), "checkout-index", "-z", "--stdin", prefix]
        _run(checkout, stdout=subprocess.DEVNULL, env=env, input=b"\0".join(paths))


def _git(cwd: Path, *args: str) -> str:
    result = _run(["git", "-C", str(cwd), *args], stdout=subprocess.PIPE)
    return result.stdout.decode("utf-8", "replace")


def _run(
    command: list[str],
    *,
    stdout: int | IO[bytes],
    env: dict[str, str] | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    try:
        result: subprocess.CompletedProcess[bytes] = subprocess.run(
            command,
            input=input,
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
