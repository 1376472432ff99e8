"""A file is hashed again only when its stat moved, as git's index does; `--deep` hashes all."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runs import records, run_spec, write_spec

from batchrun.cli import main
from batchrun.manifest import filestat
from batchrun.manifest.filestat import FILES_INDEX
from batchrun.sandbox import Sandbox

LATER = 4 * 10**18  # ns (in 2096): an index written long after every file, none "racily clean"


@pytest.fixture
def run_dir(tmp_path: Path, sandbox: Sandbox) -> Path:
    spec = write_spec(
        tmp_path,
        """\
        batchrun: 1
        jobs:
          - model: acme/painter
            input: {prompt: "p${i}", width: 64, height: 64}
            matrix: {i: {range: [0, 4]}}
        """,
    )
    run_spec(spec, sandbox)
    return tmp_path / "run"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files `status`, `verify` and `run` read and hash, by name."""
    read: list[str] = []
    digest: Callable[..., Any] = hashlib.file_digest

    def counting(handle: Any, name: str) -> Any:
        # Opened by descriptor (safefs.open_regular): its name is the link in /proc.
        read.append(Path(os.readlink(f"/proc/self/fd/{handle.fileno()}")).name)
        return digest(handle, name)

    monkeypatch.setattr(filestat.hashlib, "file_digest", counting)
    return read


def age_index(run_dir: Path) -> None:
    """As if the index had been written long after its files last changed."""
    os.utime(run_dir / FILES_INDEX, ns=(LATER, LATER))


def test_the_run_records_its_downloads_and_status_then_reads_no_file(
    run_dir: Path, hashes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = (run_dir / FILES_INDEX).read_text().splitlines()
    recorded = {f.path: f.sha256 for r in records(run_dir).values() for f in r.files}
    assert {json.loads(line)[0]: json.loads(line)[-1] for line in lines} == recorded
    age_index(run_dir)
    assert main(["status", str(run_dir)]) == 0
    assert hashes == []
    assert main(["verify", str(run_dir), "--allow-sandbox", "--quick"]) == 0
    assert hashes == []
    # --deep reads every file again.
    assert main(["status", str(run_dir), "--deep"]) == 0
    assert sorted(hashes) == sorted(Path(path).name for path in recorded)
    # verify's word is a proof: it reads every file unless --quick, whatever the index says.
    hashes.clear()
    assert main(["verify", str(run_dir), "--allow-sandbox"]) == 0
    assert sorted(hashes) == sorted(Path(path).name for path in recorded)
    capsys.readouterr()


def test_a_file_changed_in_place_is_hashed_again_and_found_changed(
    run_dir: Path, hashes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    age_index(run_dir)
    path = next(run_dir.rglob("*.png"))
    before = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size; the mtime put back as it was: only the ctime says
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert main(["status", str(run_dir), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["states"]["download"] == 1
    assert hashes == [path.name]


def test_entries_written_as_their_files_changed_are_not_trusted(
    run_dir: Path, hashes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The index's own mtime is within RACY_NS of the files': a change in the same clock tick
    # could hide, so every file is hashed (git's racily clean entries).
    newest = max(p.stat().st_ctime_ns for p in run_dir.rglob("*.png"))
    written = newest + filestat.RACY_NS // 2
    os.utime(run_dir / FILES_INDEX, ns=(written, written))
    assert main(["status", str(run_dir)]) == 0
    assert len(hashes) == 4
    capsys.readouterr()


def test_a_rerun_of_a_finished_folder_reads_no_file(
    run_dir: Path, sandbox: Sandbox, hashes: list[str]
) -> None:
    age_index(run_dir)
    summary = run_spec(run_dir.parent / "spec.yaml", sandbox)
    assert (summary.ok, summary.tally.total) == (True, 0)
    assert hashes == []
    summary = run_spec(run_dir.parent / "spec.yaml", sandbox, deep=True)
    assert len(hashes) == 4


def test_an_unreadable_index_is_an_empty_one(
    run_dir: Path, hashes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    (run_dir / FILES_INDEX).write_text("not json\n")
    assert main(["status", str(run_dir)]) == 0
    assert len(hashes) == 4
    capsys.readouterr()


def test_a_link_in_place_of_a_file_is_read_and_refused_whatever_the_index_says(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    age_index(run_dir)
    path = next(run_dir.rglob("*.png"))
    outside = tmp_path / "outside.png"
    path.rename(outside)  # the very inode the index recorded, now outside the run folder
    path.symlink_to(outside)
    assert main(["status", str(run_dir), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["states"]["download"] == 1


def test_a_download_appends_its_line_as_it_lands_and_a_later_line_of_a_path_wins(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    data = b"first bytes"
    (run / "a.png").write_bytes(data)
    first = filestat.HashedFiles(run)
    first.note("a.png", hashlib.sha256(data).hexdigest())
    # On disk at once, before any save: nothing of it waits in memory.
    assert [json.loads(line)[0] for line in (run / FILES_INDEX).read_text().splitlines()] == [
        "a.png"
    ]
    data = b"other bytes"
    (run / "a.png").write_bytes(data)
    first.note("a.png", hashlib.sha256(data).hexdigest())
    first.save()
    assert len((run / FILES_INDEX).read_text().splitlines()) == 2  # appended, not rewritten
    age_index(run)
    again = filestat.HashedFiles(run)
    assert again.difference("a.png", len(data), hashlib.sha256(data).hexdigest()) is None
    assert (again.trusted, again.hashed) == (1, 0)


def test_hashing_after_downloads_writes_one_line_per_path_keeping_both(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("fetched.png", "hashed.png"):
        (run / name).write_bytes(name.encode())
    files = filestat.HashedFiles(run)
    files.note("fetched.png", hashlib.sha256(b"fetched.png").hexdigest())
    files.note("fetched.png", hashlib.sha256(b"fetched.png").hexdigest())
    assert files.difference("hashed.png", 10, hashlib.sha256(b"hashed.png").hexdigest()) is None
    files.save()
    lines = [json.loads(line) for line in (run / FILES_INDEX).read_text().splitlines()]
    assert sorted(line[0] for line in lines) == ["fetched.png", "hashed.png"]


def test_paths_written_with_escapes_are_trusted_as_the_others(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    names = ['a "quoted" name.png', "back\\slash.png", "café.png", "plain.png"]
    files = filestat.HashedFiles(run)
    for name in names:
        (run / name).write_bytes(name.encode())
        assert (
            files.difference(name, len(name.encode()), hashlib.sha256(name.encode()).hexdigest())
            is None
        )
    files.save()
    text = (run / FILES_INDEX).read_text()
    assert [json.loads(line)[0] for line in text.splitlines()] == names  # the documented format
    assert text.isascii()  # json.dumps escapes the rest, which `_ESCAPED` reads back
    age_index(run)
    again = filestat.HashedFiles(run)
    for name in names:
        assert (
            again.difference(name, len(name.encode()), hashlib.sha256(name.encode()).hexdigest())
            is None
        )
    assert (again.trusted, again.hashed) == (4, 0)


def test_a_line_not_as_written_costs_only_its_own_file(
    run_dir: Path, hashes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Its numbers spelled otherwise (a float), a torn line (a run killed while it appended):
    # each of those files is hashed again; the other entries are still trusted.
    lines = (run_dir / FILES_INDEX).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    lines[0] = json.dumps([rows[0][0], float(rows[0][1]), *rows[0][2:]], separators=(",", ":"))
    lines[1] = lines[1][:-30]
    (run_dir / FILES_INDEX).write_text("\n".join(lines) + "\n")
    age_index(run_dir)
    assert main(["status", str(run_dir)]) == 0
    assert sorted(hashes) == sorted(Path(row[0]).name for row in rows[:2])
    # That status wrote the two lines anew: the next reads no file.
    hashes.clear()
    age_index(run_dir)
    assert main(["status", str(run_dir)]) == 0
    assert hashes == []
    capsys.readouterr()
