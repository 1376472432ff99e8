"""`-` means stdout for every file-writing option; special files are written in place."""

from __future__ import annotations

import csv
import io
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from runs import run_spec, write_spec

from batchrun.cli import main
from batchrun.sandbox import Sandbox

SPEC = """
batchrun: 1
jobs:
  - id: img
    model: acme/painter
    input: {prompt: "${p}"}
    matrix: {p: [a, b, c]}
"""


@pytest.fixture
def run_dir(tmp_path: Path, sandbox: Sandbox) -> Path:
    spec = write_spec(tmp_path, SPEC)
    run_spec(spec, sandbox)
    return tmp_path / "run"


def test_status_csv_dash_is_stdout_and_the_status_moves_to_stderr(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(run_dir), "--csv", "-"]) == 0
    out, err = capsys.readouterr()
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][:3] == ["key", "job", "status"]
    assert [row[1:3] for row in rows[1:]] == [["img", "succeeded"]] * 3
    assert f"{run_dir}: 3 predictions in 1 manifest" in err
    assert "batchrun: wrote 3 rows to stdout\n" in err
    assert not (Path.cwd() / "-").exists()


def test_status_csv_dash_with_json_is_a_usage_error(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", str(run_dir), "--csv", "-", "--json"]) == 2
    assert capsys.readouterr() == (
        "",
        "batchrun: --csv - and --json both write to stdout; give --csv a file name\n",
    )


def test_status_csv_to_a_fifo_writes_into_it_and_leaves_it_a_fifo(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "rows.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text(encoding="utf-8")))
    reader.start()
    assert main(["status", str(run_dir), "--csv", str(fifo)]) == 0
    reader.join(timeout=30)
    assert len(got[0].splitlines()) == 4
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("rows")) == ["rows.fifo"]
    assert capsys.readouterr().err.endswith(f"batchrun: wrote 3 rows to {fifo}\n")


def test_status_csv_dev_stdout_reaches_stdout(run_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchrun", "status", str(run_dir), "--csv", "/dev/stdout"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # /dev/stdout is stdout: the CSV alone there, the status on stderr, as with `-`.
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert [row[1:3] for row in rows[1:]] == [["img", "succeeded"]] * 3
    assert f"{run_dir}: 3 predictions in 1 manifest" in done.stderr
    assert os.path.islink("/dev/stdout") or not os.path.isfile("/dev/stdout")


def test_report_output_dash_is_the_page_on_stdout(
    run_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(run_dir.parent)
    # Linked, not embedded (--embed-limit 0), to check where the links point.
    assert main(["report", str(run_dir), "--output", "-", "--embed-limit", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("<!doctype html>")
    assert 'src="run/img/' in out  # image links relative to the current folder
    assert err == ""
    assert not (run_dir / "report.html").exists()
