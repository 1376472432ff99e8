"""A changed `files` template moves recorded files on the next `run`: no create, no download."""

from __future__ import annotations

from pathlib import Path

import pytest
from runs import assert_files_intact, records, run_spec, sha256, write_spec

from batchrun.cli import main
from batchrun.engine.runner import Tally
from batchrun.frontend.progress import summary_lines
from batchrun.manifest.compare import compare
from batchrun.manifest.state import State
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

SPEC = """
batchrun: 1
output: run
files: "{files}"
jobs:
  - id: painter
    model: acme/painter
    input: {{prompt: "p${{i}}", num_outputs: 2}}
    matrix: {{i: [0, 1]}}
  - id: captioner
    model: acme/painter
    input: {{prompt: "d", sandbox_output: dict}}
"""
FIRST = "${job}/${key}-${index}${ext}"
SECOND = "moved/${job}/${key}-${output}${ext}"


class Messages:
    """A progress display that keeps the run's messages."""

    def __init__(self) -> None:
        self.said: list[str] = []

    def start(self, tally: Tally) -> None:
        pass

    def update(self, tally: Tally) -> None:
        pass

    def message(self, text: str) -> None:
        self.said.append(text)

    def close(self) -> None:
        pass


def _spec(folder: Path, files: str) -> Path:
    return write_spec(folder, SPEC.format(files=files))


def _events(sandbox: Sandbox) -> tuple[int, int]:
    stats = sandbox.state.snapshot()
    return stats["creates"], stats["downloads"]


def _files(run_dir: Path) -> dict[str, list[tuple[str, str]]]:
    return {
        key: [(f.path, f.sha256) for f in record.files] for key, record in records(run_dir).items()
    }


def test_a_changed_files_template_moves_the_files_without_creates_or_downloads(
    tmp_path: Path, sandbox: Sandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    spec = _spec(tmp_path, FIRST)
    assert run_spec(spec, sandbox).ok
    before = _files(run_dir)
    assert sum(len(files) for files in before.values()) == 5
    creates, downloads = _events(sandbox)

    spec = _spec(tmp_path, SECOND)
    capsys.readouterr()
    assert main(["plan", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "  0 new, 0 done, 0 in flight, 0 failed, 0 to download, 2 to move\n" in out
    assert out.endswith(
        "total: 3 predictions: 0 new, 0 done, 0 in flight, 0 failed, 0 to download, 3 to move\n"
        "run would: move the files of 3 to the paths `files` now gives (no create, no download)\n"
    )

    summary = run_spec(spec, sandbox)
    assert summary.ok
    assert _events(sandbox) == (creates, downloads)  # nothing created, nothing fetched
    assert (
        "  3 to move: their files renamed to the paths `files` now gives (no create, no "
        "download; any that could not move are named above)"
    ) in summary_lines(summary)
    after = _files(run_dir)
    for key, files in after.items():
        job = records(run_dir)[key].job
        names = ["image"] if job == "captioner" else ["0", "1"]
        assert [path for path, _ in files] == [f"moved/{job}/{key}-{n}.png" for n in names]
        assert [digest for _, digest in files] == [digest for _, digest in before[key]]
        for path, digest in files:
            assert sha256(run_dir / path) == digest
    assert assert_files_intact(run_dir) == 5
    assert not (run_dir / "painter").exists()  # the old folders, emptied, are gone
    assert not (run_dir / "captioner").exists()
    assert {r.files_template for r in records(run_dir).values()} == {SECOND}

    assert dict(compare(load_spec(spec)).jobs[0].counts) == {State.DONE: 2}
    assert main(["status", str(spec)]) == 0
    again = run_spec(spec, sandbox)
    assert (again.survey.done, again.survey.total_work) == (3, 0)


def test_a_file_whose_new_path_is_taken_stays_and_the_run_says_why(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    run_dir = tmp_path / "run"
    spec = _spec(tmp_path, FIRST)
    assert run_spec(spec, sandbox).ok
    before = _files(run_dir)
    creates, downloads = _events(sandbox)
    key = next(k for k, r in records(run_dir).items() if r.job == "captioner")
    taken = run_dir / f"moved/captioner/{key}-image.png"
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"somebody else's")

    spec = _spec(tmp_path, SECOND)
    messages = Messages()
    summary = run_spec(spec, sandbox, progress=messages)
    assert summary.ok
    assert _events(sandbox) == (creates, downloads)
    assert taken.read_bytes() == b"somebody else's"  # never overwritten
    old = before[key][0][0]
    assert _files(run_dir)[key] == before[key]  # the key keeps its old paths
    assert messages.said == [
        f"batchrun: {key}: not moved: {old} stays: moved/captioner/{key}-image.png is taken by "
        "another file"
    ]
    assert records(run_dir)[key].files_template == FIRST  # the template that named them
    assert all(files[0][0].startswith("moved/") for k, files in _files(run_dir).items() if k != key)
    assert assert_files_intact(run_dir) == 5
    counts = compare(load_spec(spec)).jobs[1].counts
    assert dict(counts) == {State.MOVE: 1}

    taken.unlink()  # the way is clear: the next run moves it
    assert run_spec(spec, sandbox).ok
    assert _files(run_dir)[key] == [(f"moved/captioner/{key}-image.png", before[key][0][1])]


def test_a_new_path_through_a_link_out_of_the_run_folder_is_not_used(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    run_dir = tmp_path / "run"
    spec = _spec(tmp_path, FIRST)
    assert run_spec(spec, sandbox).ok
    before = _files(run_dir)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "moved").symlink_to(elsewhere)

    spec = _spec(tmp_path, SECOND)
    messages = Messages()
    assert run_spec(spec, sandbox, progress=messages).ok
    assert list(elsewhere.iterdir()) == []  # nothing went out of the run folder
    assert _files(run_dir) == before
    assert len(messages.said) == 3
    assert all("lies outside the run folder (through a link)" in said for said in messages.said)
    assert assert_files_intact(run_dir) == 5
