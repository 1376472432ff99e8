"""The report in a real browser: a sandbox run over real sockets, its report opened in headless
Chromium, and what the page shows read back: images decoded, the grid's drawn shape, the failed
cell's error, and a screenshot of the expected size.

The page is opened as `report.html#check`, which makes its inline script load every image and
then write its findings on <body> (see batchrun.report.html); `--dump-dom` prints the DOM after
the script ran.
"""

from __future__ import annotations

import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pytest
from runfolder import grids

from batchrun.engine.runner import RunOptions, run
from batchrun.report.build import build_report
from batchrun.sandbox import Sandbox
from batchrun.spec.load import load_spec

CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1200, 900)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

# Two subjects by three seeds, one of which fails on purpose with a hostile error text; the
# second subject's name is hostile too.
SPEC = """\
batchrun: 1
name: browser-check
files: "${job}/${subject}/${key}-${index}${ext}"
jobs:
  - id: flux
    # Not flux-schnell: its schema (as Replicate publishes it) takes no width and height.
    model: acme/flux
    input:
      prompt: "${subject}"
      seed: ${seed}
      width: 96
      height: 64
      sandbox_status: ${status}
      sandbox_error: "<b>boom</b> & out of memory"
    matrix:
      subject: [a red fox, "an old <lighthouse>"]
      seed: [1, 2, 3]
    include:
      - {status: succeeded}
      - {subject: a red fox, seed: 2, status: failed}
"""


def chromium(*args: str, profile: Path) -> str:
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_of_a_sandbox_run_in_headless_chromium(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox]
) -> None:
    sandbox = make_sandbox(latency=0.02)
    spec_path = tmp_path / "browser.yaml"
    spec_path.write_text(SPEC, encoding="utf-8")
    run_dir = tmp_path / "run"
    options = RunOptions(base_url=sandbox.base_url, token="sandbox-test", out=run_dir)
    summary = run(load_spec(spec_path), options)
    assert (summary.tally.succeeded, summary.tally.failed) == (5, 1)

    page = run_dir / "report.html"
    page.write_text(build_report(run_dir), encoding="utf-8")
    dom = chromium("--dump-dom", page.as_uri() + "#check", profile=tmp_path / "profile")

    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    assert 'data-images-loaded="5"' in body.group(1)
    assert 'data-images-broken="0"' in body.group(1)
    assert 'data-grid="2x3"' in body.group(1)  # as drawn: 2 rows of cells, 3 columns

    sections = grids(dom)
    assert [s["head"] for s in sections] == [["seed → subject ↓", "1", "2", "3"]]
    assert [row["head"] for row in sections[0]["rows"]] == ["a red fox", "an old <lighthouse>"]
    fox = sections[0]["rows"][0]["cells"]
    # The failed cell: its status, its error as text (not markup), its caption with the time.
    assert len(fox[1]) == 1
    assert re.fullmatch(
        r"failed failed <b>boom</b> & out of memory status failed · [\d.]+s", fox[1][0]
    )
    items = [item for row in sections[0]["rows"] for cell in row["cells"] for item in cell]
    assert sum(".png" in item for item in items) == 5
    sources = re.findall(r'<img src="([^"]+)"', dom)
    assert len(sources) == 5
    assert all((run_dir / unquote(src)).is_file() for src in sources), sources

    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", page.as_uri(), profile=tmp_path / "profile")
    assert png_size(shot) == WINDOW


WIDE_SPEC = """\
batchrun: 1
name: wide
jobs:
  - id: flux
    # Not flux-schnell: its schema (as Replicate publishes it) takes no width and height.
    model: acme/flux
    input:
      prompt: "${subject}, seed ${seed}"
      seed: ${seed}
      width: 96
      height: 64
      sandbox_status: ${status}
    matrix:
      subject: [a red fox asleep in deep snow at dawn, an old lighthouse on a windswept cliff]
      seed: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    include:
      - {status: succeeded}
      - {subject: an old lighthouse on a windswept cliff, seed: 4, status: failed}
  - id: llama
    model: meta/llama-chat
    input: {prompt: "Describe ${subject} in a line"}
    matrix:
      subject: [a red fox asleep in deep snow at dawn]
"""


def test_a_shared_report_of_a_wide_grid(
    tmp_path: Path, make_sandbox: Callable[..., Sandbox], capsys: pytest.CaptureFixture[str]
) -> None:
    """report.html alone (moved away from its run) shows its images; ten columns leave row
    labels readable; the filter narrows by status and by a variable's value; text is wide."""
    from batchrun.cli import main as cli_main

    sandbox = make_sandbox(latency=0.01)
    spec_path = tmp_path / "wide.yaml"
    spec_path.write_text(WIDE_SPEC, encoding="utf-8")
    spec = load_spec(spec_path)
    options = RunOptions(base_url=sandbox.base_url, token="sandbox-test", out=spec.output)
    summary = run(spec, options)
    assert (summary.tally.succeeded, summary.tally.failed) == (20, 1)
    assert cli_main(["report", str(spec_path), "--cols", "seed"]) == 0
    shared = tmp_path / "attachment" / "report.html"
    shared.parent.mkdir()
    shared.write_bytes(Path(capsys.readouterr().out.strip()).read_bytes())

    def body(fragment: str) -> str:
        dom = chromium("--dump-dom", shared.as_uri() + fragment, profile=tmp_path / "profile")
        found = re.search(r"<body([^>]*)>", dom)
        assert found is not None, dom[:500]
        return found.group(1)

    everything = body("#check")
    assert 'data-images-loaded="19"' in everything  # every image, from the page alone
    assert 'data-images-broken="0"' in everything
    assert 'data-filter-shown="21"' in everything
    width = int(re.search(r'data-label-width="(\d+)"', everything).group(1))  # type: ignore[union-attr]
    lines = int(re.search(r'data-label-lines="(\d+)"', everything).group(1))  # type: ignore[union-attr]
    assert width >= 60, width  # never a letter per line
    assert lines <= 4, lines

    assert 'data-filter-shown="1"' in body("#check&status=failed")
    # v0 is the first variable, subject; 0 its first value, the fox.
    assert 'data-filter-shown="11"' in body("#check&v0=0")  # 10 images and the text
    assert 'data-filter-shown="9"' in body("#check&v0=1&status=succeeded")

    page = shared.read_text(encoding="utf-8")
    assert page.count('<p class="prompt">') == 21
    assert "a red fox asleep in deep snow at dawn, seed 7" in page
    assert '<td class="text"' in page

    shot = tmp_path / "wide.png"
    chromium(f"--screenshot={shot}", shared.as_uri(), profile=tmp_path / "profile")
    assert png_size(shot) == WINDOW
