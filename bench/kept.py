"""The `--keep DIR` and `--only STEP...` of the benches that build a folder and time steps on it.

A folder is built once and kept (`--keep DIR`: a later run of the bench with the same DIR
measures it again without building), or built in a temporary folder removed at the end.
`--only` runs some of the steps, in the order given, on the folder as the earlier steps (and
runs) left it.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

BUILT = ".bench-built"  # written when a build ends: the keys it was built with


def add_keep_and_only(parser: argparse.ArgumentParser, steps: Sequence[str]) -> None:
    """`--only STEP...` (one of `steps`) and `--keep DIR`."""
    parser.add_argument(
        "--only", nargs="+", choices=steps, metavar="STEP", help=f"only these: {', '.join(steps)}"
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="build here (once) and keep it")


@contextlib.contextmanager
def bench_folder(keep: Path | None, prefix: str) -> Iterator[Path]:
    """`keep` (made if need be), else a temporary folder removed at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        folder = keep or Path(temporary)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder


def built(folder: Path, keys: int) -> bool:
    """Whether `folder` holds a build already; one of another size is refused. (A folder kept
    before builds were marked counts as built if it holds its spec.)"""
    try:
        made = int((folder / BUILT).read_text())
    except FileNotFoundError:
        return (folder / "spec.yaml").exists()
    if made != keys:
        raise SystemExit(f"{folder} was built with --keys {made}, not {keys}")
    return True


def mark_built(folder: Path, keys: int) -> None:
    """Note that the build of `keys` keys in `folder` is complete."""
    (folder / BUILT).write_text(f"{keys}\n")
