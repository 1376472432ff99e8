"""A disk that fills up mid-run: a small tmpfs as the run folder.

The run must stop with exit 1 and a message naming the path, leave a manifest that still reads
and nothing half-written in place; once space is freed, a rerun completes without creating
anything twice. Mounting needs root (or CAP_SYS_ADMIN); elsewhere these scenarios are skipped.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faultrun import check_accounted, finish, spec_for, start
from runs import records

from batchrun.sandbox import Sandbox


@dataclass
class SmallDisk:
    path: Path

    def resize(self, size: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(self.path)],
            check=True,
            capture_output=True,
        )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], SmallDisk]]:
    mounted: list[Path] = []

    def mount(size: str) -> SmallDisk:
        path = tmp_path / "disk"
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a {size} tmpfs here: {done.stderr.strip() or 'no reason'}")
        mounted.append(path)
        return SmallDisk(path)

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def test_a_disk_that_fills_with_downloads_stops_the_run_and_a_rerun_finishes(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], small_disk: Callable[[str], SmallDisk]
) -> None:
    # 1024 px PNGs (about 60 kB each) into 256 kB: a few fit, then the disk is full. One at a
    # time, so it is always a download that meets the full disk.
    disk = small_disk("256k")
    sandbox = make_sandbox(latency=0.02)
    spec = spec_for(tmp_path, keys=12, concurrency=1, side=1024)
    run_dir = disk.path / "run"
    code, err = finish(start(spec, sandbox, out=run_dir))

    assert code == 1, err
    (line,) = err.splitlines()
    assert line.startswith(f"batchrun: cannot write {run_dir}/painter/")
    assert line.endswith(".png: the disk is full (No space left on device)")
    kept = records(run_dir)  # the manifest still reads
    assert 1 <= sum(bool(r.files) for r in kept.values()) < 12
    assert [p for p in run_dir.rglob("*") if p.suffix in (".part", ".tmp")] == []

    disk.resize("4m")
    code, err = finish(start(spec, sandbox, out=run_dir))
    assert code == 0, err
    found = check_accounted(spec, sandbox, run_dir=run_dir)
    assert all(len(r.files) == 1 for r in found.values())


def fill_while_the_manifest_grows(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], small_disk: Callable[[str], SmallDisk]
) -> tuple[Path, SmallDisk, Sandbox, int, str]:
    """A run with --no-download into a disk with room for its header and a few records."""
    disk = small_disk("64k")
    ballast = disk.path / "ballast"
    ballast.write_bytes(b"\0" * (64 * 1024 - 8 * 1024))
    sandbox = make_sandbox(latency=0.02)
    padding = ", note: " + '"' + "a long input " * 20 + '"'
    spec = spec_for(tmp_path, keys=40, concurrency=4, extra=padding)
    run_dir = disk.path / "run"
    code, err = finish(start(spec, sandbox, "--no-download", out=run_dir))
    ballast.unlink()
    return spec, disk, sandbox, code, err


def test_a_disk_that_fills_while_the_manifest_is_written_loses_nothing(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], small_disk: Callable[[str], SmallDisk]
) -> None:
    spec, disk, sandbox, code, err = fill_while_the_manifest_grows(
        tmp_path, make_sandbox, small_disk
    )
    run_dir = disk.path / "run"
    assert code == 1, err
    kept = records(run_dir)  # a torn last line, if any, is ignored
    assert 0 < len(kept) < 40
    assert sandbox.state.snapshot()["creates"] < 40

    disk.resize("4m")
    code, err = finish(start(spec, sandbox, out=run_dir))
    assert code == 0, err
    check_accounted(spec, sandbox, run_dir=run_dir)


def test_a_disk_that_fills_while_the_manifest_is_written_says_so(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], small_disk: Callable[[str], SmallDisk]
) -> None:
    _, disk, _, code, err = fill_while_the_manifest_grows(tmp_path, make_sandbox, small_disk)
    run_dir = disk.path / "run"
    assert code == 1
    manifest = run_dir / "manifest.jsonl"
    lines = err.splitlines()
    assert lines[0].startswith(f"batchrun: cannot write the manifest {manifest}: "), err
    assert len(lines) == 1, err
